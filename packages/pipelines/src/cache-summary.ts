// What filling a run's caches did (`mdm-train cache`), shared by the latent and text-feature caches.

/** What filling a cache (or this shard's part of it) did: `mdm-train cache`'s JSON line, per cache. */
export interface CacheFillSummary {
  cache: 'latents' | 'text-features';
  /** The shard (`i/n`) whose part was filled, when one was. */
  shard?: string;
  /** The file written: the cache's, or the part's. */
  path: string;
  /** Entries this shard (or the whole cache) should hold: samples, or distinct captions. */
  total: number;
  /** Entries run through the encoder now. */
  encoded: number;
  /** Entries already stored before (in the cache or the part), and entries copied from merged parts. */
  present: number;
  /** Parts folded in (`i/n`), and parts found missing, foreign or unfinished (each with why). */
  merged?: string[];
  missing?: string[];
  foreign?: string[];
  incomplete?: string[];
  seconds: number;
}

/** One line per part that could not be used, for the log (empty when all were fine). */
export function mergeProblems(
  what: string,
  report: { missing: string[]; foreign: string[]; incomplete: string[] },
  then: string,
): string[] {
  return [
    ...report.missing.map((p) => `${what}: part ${p} is missing: ${then}`),
    ...report.incomplete.map((p) => `${what}: part ${p} is unfinished, not merged: ${then}`),
    ...report.foreign.map((p) => `${what}: part ${p} (not this cache's, never merged)`),
  ];
}
