import type { DecoderLayout } from './decoder-layout.js';
import { CACHE_BLOCK_POSITIONS, type SequenceCache } from './kv-cache-batch.js';

/**
 * Padding positions the decode batch may carry beyond its longest sequence before it is packed
 * again (every step adds one column; a sequence that leaves or sits a step out leaves columns no
 * row needs). Packing copies the whole cache once; the padding costs attention over it at every
 * step: 16 keeps both small for contexts of hundreds of positions.
 */
export const DECODE_BATCH_SLACK_POSITIONS = 16;

/**
 * The KV cache of the sequences that decode together, kept batched between steps so that a
 * decode step feeds it to the model as it is: per layer, keys and values as
 * [rows, kv_heads, past, head_dim] FP32, the model's `past_key_values` layout. A sequence owns a
 * row; each row holds its positions right-aligned (left padding), with a mask of which columns
 * are its own. A step feeds every row one token at column `past` (a row not stepping, paused or
 * free, feeds a masked one), and the model's `present` ([rows, kv_heads, past + 1, head_dim]) is
 * the next step's past as it comes: no copy of the cache per step, which cost a quarter to a
 * third of a 32-sequence step when each sequence's cache was copied into the batch.
 *
 * The cache is copied only when the batch's make-up changes:
 * - a sequence joining (its prompt fed apart, by prefill forwards) is copied once into a free row,
 *   right-aligned, when its positions fit the batch's past;
 * - otherwise, and when the padding grows past DECODE_BATCH_SLACK_POSITIONS beyond the longest
 *   sequence (its sequence left, or rows sat steps out), or more than a quarter of the rows are
 *   free, the batch is packed: live rows and joining ones copied into new arrays, each row's
 *   positions right-aligned again without gaps, past = the longest sequence.
 * A leaving sequence only frees its row.
 *
 * Position ids count a row's own positions, and the attention mask is 1 exactly on them, so
 * each row computes what the sequence would alone (the oracle tests hold it to that).
 */
export class DecodeBatch {
  private ids: (string | undefined)[] = [];
  private past = 0;
  private keys: Float32Array[] = [];
  private values: Float32Array[] = [];
  /** [rows, past]: 1 where the row holds one of its positions, the attention mask of the past as fed. */
  private valid = new BigInt64Array(0);
  /** Positions each row holds (its next position id). */
  private counts: number[] = [];
  private readonly rowOf = new Map<string, number>();

  constructor(private readonly layout: DecoderLayout) {}

  has(sequenceId: string): boolean {
    return this.rowOf.has(sequenceId);
  }

  /** Rows in the batch, free ones included: what a decode forward computes. */
  get rows(): number {
    return this.ids.length;
  }

  /** The padded positions of the batch's past. */
  get pastPositions(): number {
    return this.past;
  }

  /** Frees the row of a sequence (its positions stay masked until the row is reused or packed away). */
  release(sequenceId: string): void {
    const row = this.rowOf.get(sequenceId);
    if (row === undefined) return;
    this.rowOf.delete(sequenceId);
    this.ids[row] = undefined;
    if (this.rowOf.size === 0) this.clear();
  }

  /** A copy of a sequence's positions, as a cache of its own (to feed it several tokens apart from the batch). */
  extract(sequenceId: string): SequenceCache {
    const row = this.rowOf.get(sequenceId);
    if (row === undefined) throw new Error(`sequence '${sequenceId}' is not in the decode batch`);
    const { kvHeads, headDim } = this.layout;
    const length = this.counts[row]!;
    const capacity = Math.max(CACHE_BLOCK_POSITIONS, Math.ceil(length / CACHE_BLOCK_POSITIONS) * CACHE_BLOCK_POSITIONS);
    const columns = this.columnsOf(row);
    const copy = (from: Float32Array) => {
      const to = new Float32Array(kvHeads * capacity * headDim);
      for (let h = 0; h < kvHeads; h++) {
        columns.forEach((column, p) => {
          const at = ((row * kvHeads + h) * this.past + column) * headDim;
          to.set(from.subarray(at, at + headDim), (h * capacity + p) * headDim);
        });
      }
      return to;
    };
    return { length, capacity, keys: this.keys.map(copy), values: this.values.map(copy) };
  }

  /** Positions a sequence of the batch holds. */
  heldBy(sequenceId: string): number | undefined {
    const row = this.rowOf.get(sequenceId);
    return row === undefined ? undefined : this.counts[row];
  }

  /** Sequences, positions held, and bytes of the arrays (free rows and padding included). */
  use(): { sequences: number; tokens: number; bytes: number } {
    let tokens = 0;
    for (const row of this.rowOf.values()) tokens += this.counts[row]!;
    const bytes = this.keys.reduce((sum, keys, layer) => sum + keys.byteLength + this.values[layer]!.byteLength, 0);
    return { sequences: this.rowOf.size, tokens, bytes };
  }

  /**
   * The feeds of the next decode forward: each stepping sequence feeds `token`; one not in the
   * batch joins it with `joining` (its cache, fed apart; empty for a sequence with no past).
   * Nothing changes until `commit` is called with the forward's presents, so a failed forward
   * leaves the batch as it was. `rowOf` gives each stepping sequence's row (its logits' row).
   */
  prepare(stepping: readonly { readonly sequenceId: string; readonly token: number; readonly joining?: SequenceCache }[]): DecodeForward {
    const joiners = stepping.filter((entry) => !this.rowOf.has(entry.sequenceId));
    const live = this.rowOf.size;
    const free = this.ids.length - live;
    const longestJoiner = Math.max(0, ...joiners.map((entry) => entry.joining?.length ?? 0));
    let longest = longestJoiner;
    for (const row of this.rowOf.values()) longest = Math.max(longest, this.counts[row]!);
    const freeAfter = free - joiners.length;
    const pack = live === 0 || freeAfter < 0 || longestJoiner > this.past || this.past - longest >= DECODE_BATCH_SLACK_POSITIONS || freeAfter * 4 > this.ids.length;
    const layout = pack ? this.packed(joiners, longest) : this.joinedInPlace(joiners);
    const { ids, past, keys, values, valid, counts } = layout;
    const rows = ids.length;
    const total = past + 1;
    const rowIndex = new Map<string, number>();
    ids.forEach((id, row) => id !== undefined && rowIndex.set(id, row));
    const inputIds = new BigInt64Array(rows);
    const positionIds = new BigInt64Array(rows);
    const attentionMask = new BigInt64Array(rows * total);
    for (let row = 0; row < rows; row++) attentionMask.set(valid.subarray(row * past, (row + 1) * past), row * total);
    const rowOf = stepping.map(({ sequenceId, token }) => {
      const row = rowIndex.get(sequenceId)!;
      inputIds[row] = BigInt(token);
      positionIds[row] = BigInt(counts[row]!);
      attentionMask[row * total + past] = 1n;
      return row;
    });
    const commit = (presentKeys: Float32Array[], presentValues: Float32Array[]) => {
      const nextCounts = [...counts];
      for (const row of rowOf) nextCounts[row]!++;
      this.ids = ids;
      this.past = total;
      this.keys = presentKeys;
      this.values = presentValues;
      // The mask as fed is the next past's: each row's positions, and the new column where it stepped.
      this.valid = attentionMask;
      this.counts = nextCounts;
      this.rowOf.clear();
      for (const [id, row] of rowIndex) this.rowOf.set(id, row);
    };
    return { rows, past, inputIds, positionIds, attentionMask, pastKeys: keys, pastValues: values, rowOf, commit };
  }

  private clear(): void {
    this.ids = [];
    this.past = 0;
    this.keys = [];
    this.values = [];
    this.valid = new BigInt64Array(0);
    this.counts = [];
  }

  /** The columns of a row that hold its positions, in order. */
  private columnsOf(row: number): number[] {
    const columns: number[] = [];
    for (let column = 0; column < this.past; column++) if (this.valid[row * this.past + column]) columns.push(column);
    return columns;
  }

  /** Joiners copied into free rows of the arrays as they are (rows a failed forward leaves free again). */
  private joinedInPlace(joiners: readonly { readonly sequenceId: string; readonly joining?: SequenceCache }[]): BatchLayout {
    if (joiners.length === 0) return { ids: this.ids, past: this.past, keys: this.keys, values: this.values, valid: this.valid, counts: this.counts };
    const ids = [...this.ids];
    const valid = this.valid.slice();
    const counts = [...this.counts];
    let row = 0;
    for (const { sequenceId, joining } of joiners) {
      while (ids[row] !== undefined) row++;
      ids[row] = sequenceId;
      const held = joining?.length ?? 0;
      counts[row] = held;
      valid.fill(0n, row * this.past, (row + 1) * this.past - held);
      valid.fill(1n, (row + 1) * this.past - held, (row + 1) * this.past);
      if (joining) this.copyIn(joining, row, this.keys, this.values, this.past);
    }
    return { ids, past: this.past, keys: this.keys, values: this.values, valid, counts };
  }

  /** New arrays: the live rows, then the joiners, each right-aligned to `past` with no gaps. */
  private packed(joiners: readonly { readonly sequenceId: string; readonly joining?: SequenceCache }[], past: number): BatchLayout {
    const { layers, kvHeads, headDim } = this.layout;
    const liveRows = [...this.rowOf.entries()].sort((a, b) => a[1] - b[1]);
    const rows = liveRows.length + joiners.length;
    const keys = Array.from({ length: layers }, () => new Float32Array(rows * kvHeads * past * headDim));
    const values = Array.from({ length: layers }, () => new Float32Array(rows * kvHeads * past * headDim));
    const valid = new BigInt64Array(rows * past);
    const ids: string[] = [];
    const counts: number[] = [];
    liveRows.forEach(([id, from], to) => {
      const held = this.counts[from]!;
      const columns = this.columnsOf(from);
      for (let layer = 0; layer < layers; layer++) {
        for (let h = 0; h < kvHeads; h++) {
          const base = (to * kvHeads + h) * past + past - held;
          const source = (from * kvHeads + h) * this.past;
          // Runs of consecutive columns copied at once: a row has gaps only where it sat steps out.
          for (let p = 0; p < held; ) {
            let end = p + 1;
            while (end < held && columns[end] === columns[p]! + end - p) end++;
            const at = (source + columns[p]!) * headDim;
            keys[layer]!.set(this.keys[layer]!.subarray(at, at + (end - p) * headDim), (base + p) * headDim);
            values[layer]!.set(this.values[layer]!.subarray(at, at + (end - p) * headDim), (base + p) * headDim);
            p = end;
          }
        }
      }
      valid.fill(1n, (to + 1) * past - held, (to + 1) * past);
      ids.push(id);
      counts.push(held);
    });
    for (const { sequenceId, joining } of joiners) {
      const row = ids.length;
      const held = joining?.length ?? 0;
      if (joining) this.copyIn(joining, row, keys, values, past);
      valid.fill(1n, (row + 1) * past - held, (row + 1) * past);
      ids.push(sequenceId);
      counts.push(held);
    }
    return { ids, past, keys, values, valid, counts };
  }

  /** A sequence's own cache into `row`, right-aligned to `past`. */
  private copyIn(cache: SequenceCache, row: number, keys: Float32Array[], values: Float32Array[], past: number): void {
    const { layers, kvHeads, headDim } = this.layout;
    for (let layer = 0; layer < layers; layer++) {
      for (let h = 0; h < kvHeads; h++) {
        const from = h * cache.capacity * headDim;
        const to = ((row * kvHeads + h) * past + past - cache.length) * headDim;
        keys[layer]!.set(cache.keys[layer]!.subarray(from, from + cache.length * headDim), to);
        values[layer]!.set(cache.values[layer]!.subarray(from, from + cache.length * headDim), to);
      }
    }
  }
}

interface BatchLayout {
  readonly ids: (string | undefined)[];
  readonly past: number;
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  readonly valid: BigInt64Array;
  readonly counts: number[];
}

/** The feeds of one decode forward over the batch, and what keeps its presents as the batch's cache. */
export interface DecodeForward {
  readonly rows: number;
  readonly past: number;
  /** [rows, 1] */
  readonly inputIds: BigInt64Array;
  readonly positionIds: BigInt64Array;
  /** [rows, past + 1] */
  readonly attentionMask: BigInt64Array;
  /** Per layer, [rows, kv_heads, past, head_dim]. */
  readonly pastKeys: Float32Array[];
  readonly pastValues: Float32Array[];
  /** The row of each stepping sequence, in the order given. */
  readonly rowOf: readonly number[];
  /** Keeps the forward's presents (per layer, [rows, kv_heads, past + 1, head_dim]) as the batch's cache. */
  readonly commit: (presentKeys: Float32Array[], presentValues: Float32Array[]) => void;
}
