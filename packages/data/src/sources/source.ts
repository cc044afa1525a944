/**
 * The streaming side of the data package: a data set on disk is a list of SHARDS (a tar file, an
 * ImageNet synset folder, a TSV shard, a slice of a WebVid CSV) — the unit that is shuffled and
 * divided between ranks — and each shard lists SAMPLE REFERENCES in stored order without reading
 * image data. Only the samples a stream emits are read and decoded (in worker threads), so
 * resuming can replay an epoch's order over references cheaply.
 */

/** Where an encoded image (or video) lies: a whole file, or a byte range of a tar shard. */
export interface ByteRange {
  path: string;
  offset: number;
  size: number;
}

/** One sample of a source, before decoding. */
export interface SampleRef {
  /** Stable key, unique within the source (e.g. `n01440764/n01440764_10026`, the webdataset key). */
  key: string;
  /** Encoded image bytes (JPEG, PNG, WebP …) — or, for video sources, the video file. */
  image: ByteRange;
  /** The caption (already decoded text); empty for class-conditional sources without class names. */
  caption: string;
  /** Class index (ImageNet), or −1 where the source has no classes. */
  label: number;
  /** True when `image` is a video (decoded to frames with ffmpeg). */
  video?: boolean;
}

/** Counts of skipped inputs by reason, e.g. `{"corrupt image": 2, "truncated tar": 1}`. */
export type SkipCounts = Record<string, number>;

export function countSkip(skipped: SkipCounts, reason: string, n = 1): void {
  skipped[reason] = (skipped[reason] ?? 0) + n;
}

/** A data set on disk in one of the formats users already have. */
export interface ShardedSource {
  /** Stable id (format + resolved paths), recorded in run configs and reports. */
  readonly id: string;
  readonly kind: 'imagenet' | 'cc12m' | 'webvid' | 'bundled';
  /** Shard names (paths), in a fixed, sorted order. */
  readonly shards: readonly string[];
  /** Class names indexed by label (ImageNet), else empty. */
  readonly classNames: readonly string[];
  /**
   * The samples of shard `index` in stored order, without reading image data. Bad entries (a
   * truncated tar, a missing caption, a caption that is not UTF-8, an empty member) are skipped and
   * counted in `skipped`; they never throw.
   */
  scan(index: number, skipped: SkipCounts): AsyncIterable<SampleRef>;
}
