import { DataError } from '@matryoshka-ts/core';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type EmojiItem, type EmojiOptions, listEmoji } from '../emoji.js';
import { stem } from './names.js';
import { isDirectory } from './patterns.js';
import { type SampleRef, type ShardedSource, type SkipCounts, countSkip } from './source.js';

export interface BundledOptions extends Pick<EmojiOptions, 'skinTones' | 'categories' | 'packageDir'> {
  /** Images per shard (default 256, about 15 shards): enough shards to shuffle and divide between ranks. */
  itemsPerShard?: number;
}

/**
 * The bundled default data set (Twemoji from `emoji-datasource-twitter`) through the streaming
 * interface: references to the package's 64×64 PNG files, captions and labels exactly as
 * `loadEmojiDataset` gives them (names, categories). Decoding goes through `decodeImage` like every
 * other source (alpha on white, lanczos3 to the target size), so below 64 px the pixels differ
 * slightly from `loadEmojiDataset`'s box filter.
 */
export async function bundledSource(options: BundledOptions = {}): Promise<ShardedSource> {
  const itemsPerShard = options.itemsPerShard ?? 256;
  if (!(Number.isInteger(itemsPerShard) && itemsPerShard > 0))
    throw new Error(`bundled: itemsPerShard must be a positive integer, got ${itemsPerShard}`);
  const { classNames, items, imageDir, keep } = listEmoji(options);
  if (!isDirectory(imageDir)) {
    throw new DataError(`bundled: no image folder ${imageDir} (is emoji-datasource-twitter installed?)`);
  }
  const blocks: EmojiItem[][] = [];
  for (let i = 0; i < items.length; i += itemsPerShard) blocks.push(items.slice(i, i + itemsPerShard));
  const shards = blocks.map((b, k) => `${imageDir}#items=${k * itemsPerShard}-${k * itemsPerShard + b.length - 1}`);
  return {
    id:
      `bundled:emoji-twitter-16.0.0${options.skinTones === false ? '-noskin' : ''}` +
      `${keep ? `[${[...keep].join('|')}]` : ''}`,
    kind: 'bundled',
    shards,
    classNames,
    scan(index: number, skipped: SkipCounts): AsyncIterable<SampleRef> {
      const block = blocks[index];
      if (block === undefined) throw new RangeError(`bundled: no shard ${index} (${blocks.length} shards)`);
      return scanBlock(imageDir, block, skipped);
    },
  };
}

async function* scanBlock(imageDir: string, block: EmojiItem[], skipped: SkipCounts): AsyncGenerator<SampleRef> {
  for (const item of block) {
    const path = join(imageDir, item.file);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) {
      countSkip(skipped, 'missing file'); // the reason loadEmojiDataset counts
      continue;
    }
    yield {
      key: `emoji/${stem(item.file)}`,
      image: { path, offset: 0, size: info.size },
      caption: item.caption,
      label: item.label,
    };
  }
}
