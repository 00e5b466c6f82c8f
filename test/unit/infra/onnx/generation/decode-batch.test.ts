import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DECODE_BATCH_SLACK_POSITIONS, DecodeBatch, type DecodeForward } from '../../../../../src/infra/onnx/generation/decode-batch.js';
import type { DecoderLayout } from '../../../../../src/infra/onnx/generation/decoder-layout.js';
import type { SequenceCache } from '../../../../../src/infra/onnx/generation/kv-cache-batch.js';

/** One layer, 2 KV heads, head size 1: a key is readable as (sequence tag, position, head). */
const layout: DecoderLayout = { layers: 1, kvHeads: 2, headDim: 1, hasPositionIds: true };

/** What the sequence tagged `tag` holds at `position`, head `h` (its value is the negative). */
const key = (tag: number, position: number, h: number) => tag * 1000 + position * 10 + h;

/** A sequence's own cache of `length` positions (a prompt fed apart), with spare capacity holding NaN. */
function ownCache(tag: number, length: number): SequenceCache {
  const capacity = length + 3;
  const keys = Float32Array.from({ length: 2 * capacity }, (_, i) => (i % capacity < length ? key(tag, i % capacity, Math.floor(i / capacity)) : Number.NaN));
  return { length, capacity, keys: [keys], values: [keys.map((k) => -k)] };
}

/**
 * The model's presents for a decode forward, as onnxruntime gives them: the past as fed, then each
 * row's new key at column `past`, from the token it fed (its tag) and its position id. A row that
 * does not step (its new column masked) gets NaN there, which must never be read as a position.
 */
function presents(forward: DecodeForward): [Float32Array[], Float32Array[]] {
  const { rows, past } = forward;
  const total = past + 1;
  const keys = new Float32Array(rows * 2 * total);
  for (let row = 0; row < rows; row++) {
    for (let h = 0; h < 2; h++) {
      keys.set(forward.pastKeys[0]!.subarray((row * 2 + h) * past, (row * 2 + h + 1) * past), (row * 2 + h) * total);
      const stepping = forward.attentionMask[row * total + past] === 1n;
      keys[(row * 2 + h) * total + past] = stepping ? key(Number(forward.inputIds[row]), Number(forward.positionIds[row]), h) : Number.NaN;
    }
  }
  return [[keys], [keys.map((k) => -k)]];
}

/** One decode step of `tags` (each sequence feeds its tag as its token), committed; joiners bring their caches. */
function step(batch: DecodeBatch, tags: number[], joining: Record<number, SequenceCache> = {}): DecodeForward {
  const forward = batch.prepare(tags.map((tag) => ({ sequenceId: `s${tag}`, token: tag, ...(joining[tag] ? { joining: joining[tag] } : {}) })));
  // The mask is 1 exactly on a row's own positions: as many as it holds, plus its new token.
  tags.forEach((tag, i) => {
    const row = forward.rowOf[i]!;
    const mask = [...forward.attentionMask.subarray(row * (forward.past + 1), (row + 1) * (forward.past + 1))];
    assert.equal(mask.filter((m) => m === 1n).length, Number(forward.positionIds[row]) + 1, `s${tag}: mask covers its positions and its token`);
  });
  const [keys, values] = presents(forward);
  forward.commit(keys, values);
  return forward;
}

/** Asserts that sequence `tag` holds exactly positions 0..length-1 of its own, in order, keys and values. */
function assertHolds(batch: DecodeBatch, tag: number, length: number): void {
  const cache = batch.extract(`s${tag}`);
  assert.equal(cache.length, length, `s${tag} holds ${length} positions`);
  for (let h = 0; h < 2; h++) {
    const expected = Array.from({ length }, (_, p) => key(tag, p, h));
    assert.deepEqual([...cache.keys[0]!.subarray(h * cache.capacity, h * cache.capacity + length)], expected, `s${tag} keys, head ${h}`);
    assert.deepEqual([...cache.values[0]!.subarray(h * cache.capacity, h * cache.capacity + length)], expected.map((k) => -k), `s${tag} values, head ${h}`);
  }
}

describe('DecodeBatch', () => {
  it('joins sequences right-aligned to the longest, feeds each its own position, keeps the presents as the next past', () => {
    const batch = new DecodeBatch(layout);
    const forward = step(batch, [1, 2, 3], { 1: ownCache(1, 2), 3: ownCache(3, 5) });
    assert.deepEqual([forward.rows, forward.past], [3, 5]);
    assert.deepEqual([...forward.positionIds], [2n, 0n, 5n]);
    for (let i = 0; i < 4; i++) step(batch, [1, 2, 3]);
    assert.equal(batch.pastPositions, 10, 'one column a step, no copy');
    assertHolds(batch, 1, 7);
    assertHolds(batch, 2, 5);
    assertHolds(batch, 3, 10);
    assert.deepEqual(batch.use(), { sequences: 3, tokens: 22, bytes: 3 * 2 * 10 * 4 * 2 });
  });

  it('a row that sits steps out keeps its positions (its masked columns are never read)', () => {
    const batch = new DecodeBatch(layout);
    step(batch, [1, 2], { 1: ownCache(1, 3), 2: ownCache(2, 3) });
    step(batch, [1]);
    step(batch, [1]);
    const forward = step(batch, [1, 2]);
    assert.deepEqual([...forward.positionIds], [6n, 4n]);
    assertHolds(batch, 1, 7);
    assertHolds(batch, 2, 5);
  });

  it('a joiner that fits takes a freed row in place; a longer one, or one with no free row, packs the batch', () => {
    const batch = new DecodeBatch(layout);
    step(batch, [1, 2, 3, 4], { 1: ownCache(1, 6), 2: ownCache(2, 6), 3: ownCache(3, 6), 4: ownCache(4, 6) });
    batch.release('s2');
    const joined = step(batch, [1, 3, 4, 5], { 5: ownCache(5, 4) });
    assert.deepEqual([joined.rows, joined.past, joined.rowOf[3]], [4, 7, 1], 'into the freed row, the arrays as they were');
    assertHolds(batch, 5, 5);
    const grown = step(batch, [1, 3, 4, 5, 6], { 6: ownCache(6, 20) });
    assert.deepEqual([grown.rows, grown.past], [5, 20], 'packed: a row more, the past to the longest');
    for (const [tag, length] of [[1, 9], [3, 9], [4, 9], [5, 6], [6, 21]] as const) assertHolds(batch, tag, length);
  });

  it('packs when the padding passes the slack beyond the longest sequence, and when a quarter of the rows are free', () => {
    const batch = new DecodeBatch(layout);
    step(batch, [1, 2, 3, 4, 5], { 1: ownCache(1, 40), 2: ownCache(2, 2), 3: ownCache(3, 2), 4: ownCache(4, 2), 5: ownCache(5, 2) });
    batch.release('s1');
    const slack = DECODE_BATCH_SLACK_POSITIONS;
    // Past 41, the longest now holds 3: packed at the next step, past 3.
    const packed = step(batch, [2, 3, 4, 5]);
    assert.ok(41 - 3 >= slack);
    assert.deepEqual([packed.rows, packed.past], [4, 3], 'the free row and the padding dropped');
    for (const tag of [2, 3, 4, 5]) assertHolds(batch, tag, 4);
    batch.release('s3');
    assert.equal(step(batch, [2, 4, 5]).rows, 4, 'one free row of four is kept for the next to join');
    batch.release('s4');
    assert.equal(step(batch, [2, 5]).rows, 2, 'two of four are packed away');
    assertHolds(batch, 2, 6);
    assertHolds(batch, 5, 6);
  });

  it('nothing changes until commit: a failed forward leaves the batch as it was', () => {
    const batch = new DecodeBatch(layout);
    step(batch, [1, 2], { 1: ownCache(1, 3), 2: ownCache(2, 3) });
    batch.release('s2');
    const before = batch.use();
    batch.prepare([{ sequenceId: 's1', token: 1 }, { sequenceId: 's9', token: 9, joining: ownCache(9, 2) }]);
    assert.deepEqual(batch.use(), before);
    assert.equal(batch.has('s9'), false);
    assertHolds(batch, 1, 4);
    step(batch, [1]);
    assertHolds(batch, 1, 5);
  });

  it('the last sequence to leave frees the arrays; a sequence with no past joins with none', () => {
    const batch = new DecodeBatch(layout);
    step(batch, [1], { 1: ownCache(1, 3) });
    batch.release('s1');
    assert.deepEqual(batch.use(), { sequences: 0, tokens: 0, bytes: 0 });
    const forward = step(batch, [7]);
    assert.deepEqual([forward.rows, forward.past], [1, 0]);
    assertHolds(batch, 7, 1);
    assert.throws(() => batch.extract('s1'), /'s1' is not in the decode batch/);
  });
});
