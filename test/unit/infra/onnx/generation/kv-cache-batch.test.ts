import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DecoderLayout } from '../../../../../src/infra/onnx/generation/decoder-layout.js';
import { cacheBytes, emptyCache, lastLogits, padBatch, splitPresents, type SequenceCache } from '../../../../../src/infra/onnx/generation/kv-cache-batch.js';

/** One layer, 2 KV heads, head size 1: a cache value is readable as (sequence, head, position). */
const layout: DecoderLayout = { layers: 1, kvHeads: 2, headDim: 1, hasPositionIds: true };

/** A cache whose key at (head h, position p) is tag*100 + h*10 + p, and value the negative. */
function cache(tag: number, length: number): SequenceCache {
  const keys = Float32Array.from({ length: 2 * length }, (_, i) => tag * 100 + Math.floor(i / length) * 10 + (i % length));
  return { length, keys: [keys], values: [keys.map((k) => -k)] };
}

describe('kv-cache-batch', () => {
  it('left-pads pasts and new tokens, masks the padding, counts positions per sequence', () => {
    const feeds = padBatch([{ cache: cache(1, 3), tokens: [7] }, { cache: cache(2, 1), tokens: [8, 9] }, { cache: emptyCache(layout), tokens: [5] }], layout);
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

  it('splits the presents back per sequence, its past then its new positions, padding dropped', () => {
    const rows = [{ cache: cache(1, 2), tokens: [7] }, { cache: emptyCache(layout), tokens: [8, 9] }];
    const feeds = padBatch(rows, layout);
    assert.deepEqual([feeds.past, feeds.seq], [2, 2]);
    // Presents [2, 2, 4, 1]: the pasts as fed, then new keys 900 + b*10 + h*... per position.
    const present = Float32Array.from({ length: 2 * 2 * 4 }, (_, i) => {
      const [b, h, t] = [Math.floor(i / 8), Math.floor(i / 4) % 2, i % 4];
      return t < 2 ? feeds.pastKeys[0]![(b * 2 + h) * 2 + t]! : 900 + b * 100 + h * 10 + t;
    });
    const [first, second] = splitPresents(rows, feeds, [present], [present.map((k) => -k)], layout);
    assert.equal(first!.length, 3);
    assert.deepEqual([...first!.keys[0]!], [100, 101, 903, 110, 111, 913]);
    assert.equal(second!.length, 2);
    assert.deepEqual([...second!.keys[0]!], [1002, 1003, 1012, 1013]);
    assert.deepEqual([...second!.values[0]!], [-1002, -1003, -1012, -1013]);
    assert.equal(cacheBytes(first!), 2 * 6 * 4);
  });

  it('reads each row\'s logits at the last position', () => {
    const logits = Float32Array.from({ length: 2 * 3 * 2 }, (_, i) => i);
    assert.deepEqual([...lastLogits(logits, 0, 3, 2)], [4, 5]);
    assert.deepEqual([...lastLogits(logits, 1, 3, 2)], [10, 11]);
  });
});
