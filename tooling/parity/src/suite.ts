import { describe, it } from 'vitest';
import { type FixtureFolder, discoverFixtures, underCi } from '@matryoshka-ts/test-utils';

/**
 * Runs `body` once per fixture folder (shared ones + MDM_EXTRA_FIXTURES), naming each describe
 * block after the folder. Without the shared folder the suite is skipped, except under CI where
 * its absence fails.
 */
export function forEachFixture(title: string, body: (fixture: FixtureFolder) => void): void {
  const { folders, missing } = discoverFixtures();
  if (missing && folders.length === 0) {
    if (underCi()) {
      it(`${title}: fixtures are present`, () => {
        throw new Error(`${missing}; CI needs the ml-mdm fixtures (../shared/fixtures/ml-mdm)`);
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
