// Fetches a run exported by `mdm-train export --web` (web-run.json, config.json,
// weights.safetensors from one folder URL) and opens it on the active backend.
import { WEB_RUN_FILE, type WebRun, openWebRun, parseWebRunManifest } from '@matryoshka-ts/pipelines/browser';

async function fetchOk(url: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new Error(`cannot fetch ${url} (${(error as Error).message})`);
  }
  if (!response.ok)
    throw new Error(
      `${url}: ${response.status} ${response.statusText}` +
        (url.endsWith(WEB_RUN_FILE) ? ' (export a run there with `mdm-train export --web <dir> --run <run>`)' : ''),
    );
  return response;
}

/** Opens the web run in the folder at `base` (a URL, relative to the page or absolute). */
export async function loadRun(base: string): Promise<WebRun> {
  const folder = new URL(base.endsWith('/') ? base : `${base}/`, location.href).href.replace(/\/$/, '');
  const manifest = parseWebRunManifest(
    await (await fetchOk(`${folder}/${WEB_RUN_FILE}`)).json(),
    `${folder}/${WEB_RUN_FILE}`,
  );
  const [config, weights] = await Promise.all([
    fetchOk(`${folder}/${manifest.config}`).then((r) => r.json()),
    fetchOk(`${folder}/${manifest.weights}`).then((r) => r.arrayBuffer()),
  ]);
  return openWebRun({ manifest, config, weights, source: folder });
}
