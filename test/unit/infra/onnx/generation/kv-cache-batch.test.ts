import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GREEDY } from '../../../../../src/domain/generation/sampling.js';
import type { DecoderLayout } from '../../../../../src/infra/onnx/generation/decoder-layout.js';
import { appendPresents, CACHE_BLOCK_POSITIONS, cacheBytes, emptyCache, lastLogits, padBatch, PREFILL_POSITIONS_PER_FORWARD, prefillGroups, type SequenceCache } from '../../../../../src/infra/onnx/generation/kv-cache-batch.js';

/** One layer, 2 KV heads, head size 1: a cache value is readable as (sequence, head, position). */
const layout: DecoderLayout = { layers: 1, kvHeads: 2, headDim: 1, hasPositionIds: true };

/** A cache whose key at (head h, position p) is tag*100 + h*10 + p, and value the negative; unused capacity holds NaN. */
function cache(tag: number, length: number, capacity = length + 2): SequenceCache {
  const keys = Float32Array.from({ length: 2 * capacity }, (_, i) => (i % capacity < length ? tag * 100 + Math.floor(i / capacity) * 10 + (i % capacity) : Number.NaN));
  return { length, capacity, keys: [keys], values: [keys.map((k) => -k)] };
}

/** A cache's positions, per head (its unused capacity left out). */
const positions = (cache: SequenceCache, values = false): number[][] =>
  [0, 1].map((h) => [...(values ? cache.values : cache.keys)[0]!.subarray(h * cache.capacity, h * cache.capacity + cache.length)]);

describe('kv-cache-batch', () => {
  it('left-pads pasts and new tokens, masks the padding, counts positions per sequence', () => {
    const feeds = padBatch([{ cache: cache(1, 3), tokens: [7] }, { cache: cache(2, 1, 4), tokens: [8, 9] }, { cache: emptyCache(layout), tokens: [5] }], layout);
    assert.deepEqual([feeds.batch, feeds.past, feeds.seq], [3, 3, 2]);
    // Row b: [pad][past][pad][new], right-aligned.
    assert.deepEqual([...feeds.inputIds], [0n, 7n, 8n, 9n, 0n, 5n]);
    assert.deepEqual([...feeds.positionIds], [0n, 3n, 1n, 2n, 0n, 0n]);
    assert.deepEqual([...feeds.attentionMask], [
      1n, 1n, 1n, 0n, 1n,
      0n, 0n, 1n, 1n, 1n,
      0n, 0n, 0n, 0n, 1n,
    ]);
    // [batch 3, heads 2, past 3, 1]: each head's past right-aligned, zeros before.
    assert.deepEqual([...feeds.pastKeys[0]!], [100, 101, 102, 110, 111, 112, 0, 0, 200, 0, 0, 210, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual([...feeds.pastValues[0]!].map((v) => (v === 0 ? 0 : -v)), [100, 101, 102, 110, 111, 112, 0, 0, 200, 0, 0, 210, 0, 0, 0, 0, 0, 0]);
  });

  it('appends each row\'s new positions from the presents after its past, padding dropped, growing by whole blocks', () => {
    const rows = [{ cache: cache(1, 2), tokens: [7] }, { cache: emptyCache(layout), tokens: [8, 9] }];
    const feeds = padBatch(rows, layout);
    assert.deepEqual([feeds.past, feeds.seq], [2, 2]);
    // Presents [2, 2, 4, 1]: the pasts as fed, then new keys 900 + b*100 + h*10 + t at positions t = 2, 3.
    const present = Float32Array.from({ length: 2 * 2 * 4 }, (_, i) => {
      const [b, h, t] = [Math.floor(i / 8), Math.floor(i / 4) % 2, i % 4];
      return t < 2 ? feeds.pastKeys[0]![(b * 2 + h) * 2 + t]! : 900 + b * 100 + h * 10 + t;
    });
    const [first, second] = appendPresents(rows, feeds, [present], [present.map((k) => -k)], layout);
    assert.deepEqual([first!.length, first!.capacity], [3, 4], 'room left: appended in place');
    assert.equal(first!.keys[0], rows[0]!.cache.keys[0]);
    assert.deepEqual(positions(first!), [[100, 101, 903], [110, 111, 913]]);
    assert.deepEqual([second!.length, second!.capacity], [2, CACHE_BLOCK_POSITIONS], 'a new cache takes a block');
    assert.deepEqual(positions(second!), [[1002, 1003], [1012, 1013]]);
    assert.deepEqual(positions(second!, true), [[-1002, -1003], [-1012, -1013]]);
    assert.equal(cacheBytes(second!), 2 * 2 * CACHE_BLOCK_POSITIONS * 4);
    assert.equal(rows[0]!.cache.length, 2, 'the cache as it was is untouched (a failed step keeps it)');
  });

  it('copies a full cache into the next block, its past first', () => {
    const full = cache(3, 2, 2);
    const rows = [{ cache: full, tokens: [1] }];
    const feeds = padBatch(rows, layout);
    const present = Float32Array.from({ length: 2 * 3 }, (_, i) => (i % 3 < 2 ? feeds.pastKeys[0]![Math.floor(i / 3) * 2 + (i % 3)]! : 77));
    const [grown] = appendPresents(rows, feeds, [present], [present], layout);
    assert.deepEqual([grown!.length, grown!.capacity], [3, CACHE_BLOCK_POSITIONS]);
    assert.deepEqual(positions(grown!), [[300, 301, 77], [310, 311, 77]]);
  });

  it('reads each row\'s logits at the last position', () => {
    const logits = Float32Array.from({ length: 2 * 3 * 2 }, (_, i) => i);
    assert.deepEqual([...lastLogits(logits, 0, 3, 2)], [4, 5]);
    assert.deepEqual([...lastLogits(logits, 1, 3, 2)], [10, 11]);
  });

  it('groups prompts into forwards of at most PREFILL_POSITIONS_PER_FORWARD padded positions, in order; a longer chunk runs alone', () => {
    const prompt = (sequenceId: string, length: number) => ({ sequenceId, tokens: new Array(length).fill(1), sample: true, sampling: GREEDY });
    const groups = (lengths: number[]) => prefillGroups(lengths.map((length, i) => prompt(`s${i}`, length))).map((group) => group.map((input) => input.tokens.length));
    const limit = PREFILL_POSITIONS_PER_FORWARD;
    assert.deepEqual(groups([limit / 2, limit / 2, limit / 2]), [[limit / 2, limit / 2], [limit / 2]]);
    assert.deepEqual(groups([10, limit / 2, 10]), [[10, limit / 2], [10]], 'padded to the longest: 3 x 512 would pass the bound');
    assert.deepEqual(groups([limit * 2, 2]), [[limit * 2], [2]]);
    assert.deepEqual(groups(new Array(40).fill(2)), [new Array(40).fill(2)]);
    assert.deepEqual(groups([]), []);
  });
});
