import type { SequenceStepInput } from '../../../domain/generation/generation-engine.port.js';
import type { DecoderLayout } from './decoder-layout.js';

/**
 * The KV cache of one sequence: for each layer, its keys and its values as [kv_heads, capacity,
 * head_dim] FP32, of which the first `length` positions of each head are the positions it fed
 * (never padding). The capacity grows by whole blocks of {@link CACHE_BLOCK_POSITIONS}, so a
 * step appends only its new positions (a copy of the whole cache per step would cost as much as
 * the attention reading it), and a sequence holds at most a block beyond its length.
 */
export interface SequenceCache {
  readonly length: number;
  readonly capacity: number;
  readonly keys: readonly Float32Array[];
  readonly values: readonly Float32Array[];
}

export const CACHE_BLOCK_POSITIONS = 32;

export const emptyCache = (layout: DecoderLayout): SequenceCache => ({
  length: 0,
  capacity: 0,
  keys: Array.from({ length: layout.layers }, () => new Float32Array(0)),
  values: Array.from({ length: layout.layers }, () => new Float32Array(0)),
});

/** The bytes a cache takes (its capacity, keys and values of every layer). */
export const cacheBytes = (cache: SequenceCache): number =>
  cache.keys.reduce((sum, keys, layer) => sum + keys.byteLength + cache.values[layer]!.byteLength, 0);

/** One sequence of a batched forward: what it holds and the tokens it feeds now. */
export interface BatchRow {
  readonly cache: SequenceCache;
  readonly tokens: readonly number[];
}

/**
 * The feeds of one forward over several sequences. Both the past and the new tokens are
 * right-aligned, padding on the left: row b is `[pad][its past][pad][its new tokens]`, with
 * `past` = the longest past and `seq` = the most new tokens of the rows. `attention_mask` is 0 on
 * every padding position, so no real position attends to one; positions count the sequence's own
 * tokens only (its past length, then on), as they would alone. Every row's last new token is at
 * the last position, where the logits that choose its next token are read.
 */
export interface BatchFeeds {
  readonly batch: number;
  readonly past: number;
  readonly seq: number;
  readonly inputIds: BigInt64Array;
  readonly attentionMask: BigInt64Array;
  readonly positionIds: BigInt64Array;
  /** Per layer, [batch, kv_heads, past, head_dim]. */
  readonly pastKeys: Float32Array[];
  readonly pastValues: Float32Array[];
}

export function padBatch(rows: readonly BatchRow[], layout: DecoderLayout): BatchFeeds {
  const { layers, kvHeads, headDim } = layout;
  const batch = rows.length;
  const past = Math.max(...rows.map((row) => row.cache.length));
  const seq = Math.max(...rows.map((row) => row.tokens.length));
  const total = past + seq;
  const inputIds = new BigInt64Array(batch * seq);
  const positionIds = new BigInt64Array(batch * seq);
  const attentionMask = new BigInt64Array(batch * total);
  const pastKeys = Array.from({ length: layers }, () => new Float32Array(batch * kvHeads * past * headDim));
  const pastValues = Array.from({ length: layers }, () => new Float32Array(batch * kvHeads * past * headDim));
  rows.forEach(({ cache, tokens }, b) => {
    const held = cache.length;
    const fed = tokens.length;
    for (let k = 0; k < fed; k++) {
      inputIds[b * seq + seq - fed + k] = BigInt(tokens[k]!);
      positionIds[b * seq + seq - fed + k] = BigInt(held + k);
    }
    attentionMask.fill(1n, b * total + past - held, b * total + past);
    attentionMask.fill(1n, b * total + total - fed, (b + 1) * total);
    for (let layer = 0; layer < layers; layer++) {
      for (let h = 0; h < kvHeads; h++) {
        const to = ((b * kvHeads + h) * past + past - held) * headDim;
        const from = h * cache.capacity * headDim;
        pastKeys[layer]!.set(cache.keys[layer]!.subarray(from, from + held * headDim), to);
        pastValues[layer]!.set(cache.values[layer]!.subarray(from, from + held * headDim), to);
      }
    }
  });
  return { batch, past, seq, inputIds, attentionMask, positionIds, pastKeys, pastValues };
}

/**
 * Each row's cache after the forward: its new tokens' keys and values taken out of the presents
 * ([batch, kv_heads, past + seq, head_dim] per layer) and appended after its past, in place
 * (positions past a cache's length are unused, so the cache as it was stays valid until the new
 * one replaces it) or into a larger copy when the capacity is reached.
 */
export function appendPresents(
  rows: readonly BatchRow[],
  feeds: Pick<BatchFeeds, 'past' | 'seq'>,
  presentKeys: readonly Float32Array[],
  presentValues: readonly Float32Array[],
  layout: DecoderLayout,
): SequenceCache[] {
  const { layers, kvHeads, headDim } = layout;
  const total = feeds.past + feeds.seq;
  return rows.map(({ cache, tokens }, b) => {
    const held = cache.length;
    const fed = tokens.length;
    const length = held + fed;
    const capacity = length <= cache.capacity ? cache.capacity : Math.ceil(length / CACHE_BLOCK_POSITIONS) * CACHE_BLOCK_POSITIONS;
    const append = (stored: Float32Array, present: Float32Array): Float32Array => {
      let target = stored;
      if (capacity !== cache.capacity) {
        target = new Float32Array(kvHeads * capacity * headDim);
        for (let h = 0; h < kvHeads; h++) target.set(stored.subarray(h * cache.capacity * headDim, (h * cache.capacity + held) * headDim), h * capacity * headDim);
      }
      for (let h = 0; h < kvHeads; h++) {
        const row = (b * kvHeads + h) * total;
        target.set(present.subarray((row + total - fed) * headDim, (row + total) * headDim), (h * capacity + held) * headDim);
      }
      return target;
    };
    return {
      length,
      capacity,
      keys: Array.from({ length: layers }, (_, layer) => append(cache.keys[layer]!, presentKeys[layer]!)),
      values: Array.from({ length: layers }, (_, layer) => append(cache.values[layer]!, presentValues[layer]!)),
    };
  });
}

/** Row b's logits at the last position ([batch, seq, vocab] in), where its last new token is. */
export function lastLogits(logits: Float32Array, b: number, seq: number, vocab: number): Float32Array {
  const at = (b * seq + seq - 1) * vocab;
  return logits.subarray(at, at + vocab);
}

/** The most padded positions (rows x longest chunk) one prefill forward computes, unless one chunk alone is longer. */
export const PREFILL_POSITIONS_PER_FORWARD = 1024;

/** Prefill sequences in forwards of at most PREFILL_POSITIONS_PER_FORWARD padded positions, in their order. */
export function prefillGroups(prefill: readonly SequenceStepInput[]): SequenceStepInput[][] {
  const groups: SequenceStepInput[][] = [];
  let group: SequenceStepInput[] = [];
  let longest = 0;
  for (const input of prefill) {
    const widest = Math.max(longest, input.tokens.length);
    if (group.length > 0 && (group.length + 1) * widest > PREFILL_POSITIONS_PER_FORWARD) {
      groups.push(group);
      group = [];
    }
    longest = group.length === 0 ? input.tokens.length : widest;
    group.push(input);
  }
  if (group.length > 0) groups.push(group);
  return groups;
}
