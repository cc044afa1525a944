import { describe, it } from 'vitest';
import {
  type FixtureConfig,
  type FixtureFolder,
  type FixtureKind,
  discoverFixtures,
  sharedFixturesDir,
  underCi,
} from '@matryoshka-ts/test-utils';

/**
 * Runs `body` once per fixture folder of `kind` (shared ones + MDM_EXTRA_FIXTURES of that kind),
 * naming each describe block after the folder. Without the shared folder the suite is skipped,
 * except under CI where its absence fails.
 */
export function forEachFixture<C = FixtureConfig>(
  title: string,
  body: (fixture: FixtureFolder<C>) => void,
  kind: FixtureKind = 'ml-mdm',
  only?: (fixture: FixtureFolder<C>) => boolean,
): void {
  const { folders: all, missing } = discoverFixtures<C>(kind);
  const folders = only ? all.filter(only) : all;
  if (missing && all.length === 0) {
    if (underCi()) {
      it(`${title}: fixtures are present`, () => {
        throw new Error(`${missing}; CI needs the ${kind} fixtures (${sharedFixturesDir(kind)})`);
      });
    } else {
      console.warn(`[parity] ${missing}: ${title} skipped (set MDM_FIXTURES_DIR or clone beside shared/)`);
      describe.skip(`${title} (${missing}; skipped)`, () => {
        it('needs the fixtures', () => {});
      });
    }
    return;
  }
  for (const fixture of folders) describe(`${title} [${fixture.name}]`, () => body(fixture));
}
