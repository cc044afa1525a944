// The page in a real browser: a micro run trained and exported with `mdm-train export --web`, the
// page built with Vite and served on localhost, headless Chromium (Debian's, driven by
// playwright-core) sampling a fixed prompt and seed, and its images compared with `generate` in
// Node on the cpu backend. Skipped where /usr/bin/chromium is missing, required under CI.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@matryoshka-ts/backends';
import { openRun } from '@matryoshka-ts/pipelines';
import { underCi } from '@matryoshka-ts/test-utils';
import type { PageState } from './main.js';
import { serveFolders } from './static-server.js';

const CHROMIUM = process.env.MDM_CHROMIUM ?? '/usr/bin/chromium';
const web = fileURLToPath(new URL('..', import.meta.url));
const root = join(web, '..', '..');
/** Screenshots are kept here (gitignored) for a look after the run. */
const artifacts = join(web, 'test-artifacts');

const PROMPT = 'grinning face';
const SEED = 3;
const STEPS = 8;
/**
 * Largest difference allowed between the page's pixels and Node's, on values in [−1, 1]. The
 * page computes in float32 in GPU shaders (or WebAssembly), Node in float32 on the cpu backend:
 * the same operations, rounded differently (sums in another order, a GPU's own exp, sin and
 * rsqrt, accurate to a few ulp), grown through the network, 8 steps and guidance's 3× weight.
 * Measured here: 1.2e-7 on WebGL (SwiftShader) and on wasm; a hardware GPU rounds more. 1e-3 is an
 * eighth of one 8-bit grey level (2/255 ≈ 7.8e-3 in [−1, 1]), while a page that went wrong (another
 * seed, prompt, weight, schedule or level order) differs by ~0.1–1.
 */
const TOLERANCE = 1e-3;

/** `mdm-train …` from the repository root, on the workspace's sources. */
function mdmTrain(args: string[]): string {
  return execFileSync(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', 'apps/trainer/src/cli.ts', ...args],
    {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
}

const haveChromium = existsSync(CHROMIUM);

describe.runIf(haveChromium || underCi())('the web page in headless Chromium', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mdm-web-'));
  let server: Server | undefined;
  let url: string;
  let context: BrowserContext | undefined;

  beforeAll(async () => {
    if (!haveChromium)
      throw new Error(`CI needs Chromium at ${CHROMIUM}: bash tooling/scripts/native-libs.sh --browser installs it`);
    mdmTrain(['train', '--preset', 'micro', '--steps', '6', '--out', join(dir, 'run'), '--backend', 'cpu']);
    mdmTrain(['export', '--web', join(dir, 'web'), '--run', join(dir, 'run')]);
    await build({
      root: web,
      configFile: join(web, 'vite.config.ts'),
      logLevel: 'warn',
      publicDir: false, // not a run a user exported into public/run
      build: { outDir: join(dir, 'dist'), emptyOutDir: true },
    });
    ({ server, url } = await serveFolders({ '/': join(dir, 'dist'), '/run/': join(dir, 'web') }));
    // Chromium with no network chatter (a closed network floods otherwise) and a fresh profile;
    // WebGL through SwiftShader, its software renderer, since there is no GPU.
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--enable-unsafe-swiftshader',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 240_000);

  afterAll(async () => {
    await context?.close();
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens the page (`query` appended), samples PROMPT with SEED in STEPS steps, returns its state. */
  async function samplePage(query: string, screenshot: string): Promise<PageState> {
    const page = await context!.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`${url}/?run=run/${query}`);
    await page.waitForFunction(() => ['ready', 'error'].includes(window.mdm?.status), undefined, { timeout: 60_000 });
    const loaded = await page.evaluate(() => window.mdm);
    expect(loaded.error, problems.join('\n')).toBeUndefined();
    await page.fill('#prompt', PROMPT);
    await page.fill('#seed', String(SEED));
    await page.fill('#steps', String(STEPS));
    // Clicked from inside the page: the first sampling step (compiling WebGL's shaders) holds the
    // page's thread for tens of seconds under SwiftShader, which playwright's own click waits out.
    await page.locator('#sample').evaluate((button: HTMLButtonElement) => button.click());
    await page.waitForFunction(() => ['done', 'error'].includes(window.mdm.status), undefined, { timeout: 120_000 });
    const state = await page.evaluate(() => window.mdm);
    expect(state.error, problems.join('\n')).toBeUndefined();
    expect(await page.locator('#progress').evaluate((p: HTMLProgressElement) => [p.value, p.max])).toEqual([
      STEPS,
      STEPS,
    ]);
    // One canvas per level, and each level's row of snapshots (one per step here: 8 steps, 8 kept).
    expect(await page.locator('#levels canvas').count()).toBe(2);
    expect(
      await page.locator('#history .history-row').evaluateAll((rows) => rows.map((r) => r.children.length)),
    ).toEqual([STEPS, STEPS]);
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, screenshot), fullPage: true });
    console.log(
      `[web] ${state.backend} (${state.skipped?.join('; ') || 'first choice'}): sampled in ` +
        `${state.seconds?.toFixed(1)} s; screenshot: ${join(artifacts, screenshot)}`,
    );
    await page.close();
    return state;
  }

  /** The same sample in Node: the run opened from its checkpoint, `generate` on the cpu backend. */
  async function nodeSample() {
    await initBackend({ backend: 'cpu', quiet: true });
    const run = await openRun(join(dir, 'run'));
    try {
      const { sampler, eta, guidance, threshold } = run.config.sampling;
      return await run.generate({
        captions: [PROMPT],
        labels: [0],
        steps: STEPS,
        sampler,
        eta,
        guidance,
        threshold,
        seed: SEED,
      });
    } finally {
      run.dispose();
    }
  }

  function expectClose(page: PageState, node: Awaited<ReturnType<typeof nodeSample>>): number {
    expect(page.samples!.map((l) => l.resolution)).toEqual(node.map((l) => l.resolution));
    let worst = 0;
    page.samples!.forEach((level, i) => {
      const want = node[i].images[0];
      expect(level.values.length).toBe(want.length);
      for (let k = 0; k < want.length; k++) worst = Math.max(worst, Math.abs(level.values[k] - want[k]));
    });
    expect(worst).toBeLessThanOrEqual(TOLERANCE);
    return worst;
  }

  it('samples every level on WebGL (?backend=webgl, SwiftShader here) as Node does on cpu', async () => {
    const page = await samplePage('&backend=webgl', 'page-webgl.png');
    expect(page.backend).toBe('webgl');
    const worst = expectClose(page, await nodeSample());
    console.log(`[web] webgl on ${page.renderer}: largest difference from Node's cpu sample ${worst.toExponential(2)}`);
  });

  it('samples the same on the backend it picks itself (wasm here), its binaries served with the page', async () => {
    const page = await samplePage('', 'page.png');
    // Headless Chromium without a GPU has no WebGPU adapter, and its WebGL is software (SwiftShader).
    expect(page.backend).toBe(page.skipped?.some((s) => s.startsWith('webgl: a software renderer')) ? 'wasm' : 'webgl');
    const worst = expectClose(page, await nodeSample());
    console.log(`[web] ${page.backend}: largest difference from Node's cpu sample ${worst.toExponential(2)}`);
  });
});
