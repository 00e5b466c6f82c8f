import type { DecoderLayout } from './decoder-layout.js';

/**
 * The KV cache of one sequence: for each layer, its keys and its values as [kv_heads, length,
 * head_dim] FP32, exactly the positions it fed (never padding).
 */
export interface SequenceCache {
  readonly length: number;
  readonly keys: readonly Float32Array[];
  readonly values: readonly Float32Array[];
}

export const emptyCache = (layout: DecoderLayout): SequenceCache => ({
  length: 0,
  keys: Array.from({ length: layout.layers }, () => new Float32Array(0)),
  values: Array.from({ length: layout.layers }, () => new Float32Array(0)),
});

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
        const from = h * held * headDim;
        pastKeys[layer]!.set(cache.keys[layer]!.subarray(from, from + held * headDim), to);
        pastValues[layer]!.set(cache.values[layer]!.subarray(from, from + held * headDim), to);
      }
    }
  });
  return { batch, past, seq, inputIds, attentionMask, positionIds, pastKeys, pastValues };
}

/**
 * Each row's cache after the forward: its past and its new tokens' keys and values taken out of
 * the presents ([batch, kv_heads, past + seq, head_dim] per layer), the padding dropped.
 */
export function splitPresents(
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
    const take = (present: Float32Array): Float32Array => {
      const kept = new Float32Array(kvHeads * length * headDim);
      for (let h = 0; h < kvHeads; h++) {
        const row = (b * kvHeads + h) * total;
        const to = h * length * headDim;
        kept.set(present.subarray((row + feeds.past - held) * headDim, (row + feeds.past) * headDim), to);
        kept.set(present.subarray((row + total - fed) * headDim, (row + total) * headDim), to + held * headDim);
      }
      return kept;
    };
    return {
      length,
      keys: Array.from({ length: layers }, (_, layer) => take(presentKeys[layer]!)),
      values: Array.from({ length: layers }, (_, layer) => take(presentValues[layer]!)),
    };
  });
}

/** Row b's logits at the last position ([batch, seq, vocab] in), where its last new token is. */
export function lastLogits(logits: Float32Array, b: number, seq: number, vocab: number): Float32Array {
  const at = (b * seq + seq - 1) * vocab;
  return logits.subarray(at, at + vocab);
}
