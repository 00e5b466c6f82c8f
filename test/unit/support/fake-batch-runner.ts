import type { BatchRunner, CancellationSignal } from '../../../src/domain/inference/dynamic-batch-scheduler.js';
import type { Tensor } from '../../../src/domain/inference/tensor.js';
import { batchRows, mergeInputs, splitOutputs } from '../../../src/domain/inference/batch.js';
import type { TensorData } from '../../../src/domain/shared/datatype.js';

/** What a fake model computes from a merged batch: the outputs it answers with. */
export type Compute = (inputs: readonly Tensor[], outputNames: readonly string[]) => Tensor[];

/** One call of the runner: the merged batch it was given, and the means to end it. */
export interface RunCall {
  readonly inputs: readonly Tensor[];
  readonly outputNames: readonly string[];
  /** Rows in the merged batch (the first input's batch dimension). */
  readonly rows: number;
  /** Whether finish() or fail() has been called. */
  readonly ended: boolean;
  /** Answers the run with `outputs`, by default what the runner's compute makes of its inputs. */
  finish(outputs?: Tensor[], computeMicros?: number): void;
  fail(error: Error): void;
}

/** Longest a test waits for a run that should start; past it the test fails instead of hanging. */
const RUN_GUARD_MS = 2_000;

/**
 * A BatchRunner whose runs end when the test says so: every call is recorded with its merged inputs
 * and stays pending until `finish()` or `fail()`, so a test decides when instances become free. It
 * gathers and splits as an instance does (the domain's mergeInputs and splitOutputs).
 */
export class FakeBatchRunner {
  readonly calls: RunCall[] = [];
  private readonly waiters: { count: number; resolve: () => void }[] = [];

  /** By default every requested output is the first input plus one (see {@link plusOne}). */
  constructor(private readonly compute: Compute = (inputs, outputNames) => outputNames.map((name) => plusOne(inputs[0], name))) {}

  readonly run: BatchRunner = (members, outputNames) =>
    new Promise((resolve, reject) => {
      const inputs = mergeInputs(members);
      let ended = false;
      const end = (): boolean => {
        if (ended) return false;
        ended = true;
        return true;
      };
      this.calls.push({
        inputs,
        outputNames,
        rows: inputs[0]?.shape[0] ?? 0,
        get ended() {
          return ended;
        },
        finish: (outputs = this.compute(inputs, outputNames), computeMicros = 1000) => {
          if (!end()) return;
          try {
            resolve({ outputs: splitOutputs(outputs, members.map((m) => batchRows(m))), computeMicros, inputMicros: 0, outputMicros: 0 });
          } catch (error) {
            reject(error as Error);
          }
        },
        fail: (error) => {
          if (end()) reject(error);
        },
      });
      for (const waiter of this.waiters.filter((w) => this.calls.length >= w.count)) waiter.resolve();
    });

  /** The `index`-th call (0-based), once it has started; fails the test if it does not start. */
  async nth(index: number): Promise<RunCall> {
    if (this.calls.length <= index) {
      await new Promise<void>((resolve, reject) => {
        const guard = setTimeout(() => reject(new Error(`expected run #${index + 1} to start, but only ${this.calls.length} started`)), RUN_GUARD_MS);
        this.waiters.push({
          count: index + 1,
          resolve: () => {
            clearTimeout(guard);
            resolve();
          },
        });
      });
    }
    return this.calls[index];
  }

  /** Rows of each run so far, in the order they started. */
  get rowsPerRun(): number[] {
    return this.calls.map((call) => call.rows);
  }

  /** Ends every run still pending (for after hooks). */
  finishAll(): void {
    for (const call of this.calls) call.finish();
  }
}

/** The tensor's data, each element plus one (BYTES: a '+' appended; BOOL: negated), under `name`. */
export function plusOne(tensor: Tensor, name: string): Tensor {
  return { name, datatype: tensor.datatype, shape: [...tensor.shape], data: mapData(tensor) };
}

function mapData({ datatype, data }: Tensor): TensorData {
  if (Array.isArray(data)) return data.map((s) => `${s}+`);
  if (data instanceof BigInt64Array) return data.map((v) => v + 1n);
  if (data instanceof BigUint64Array) return data.map((v) => v + 1n);
  if (datatype === 'BOOL') return (data as Uint8Array).map((v) => 1 - v);
  return (data as Float32Array).map((v) => v + 1) as TensorData;
}

/** A client connection the test can drop. */
export class FakeCancellationSignal implements CancellationSignal {
  private readonly listeners = new Set<() => void>();
  aborted = false;

  static alreadyAborted(): FakeCancellationSignal {
    const signal = new FakeCancellationSignal();
    signal.aborted = true;
    return signal;
  }

  /** Listeners still subscribed. */
  get listenerCount(): number {
    return this.listeners.size;
  }

  onAbort(listener: () => void): () => void {
    const once = () => {
      this.listeners.delete(once);
      listener();
    };
    this.listeners.add(once);
    return () => this.listeners.delete(once);
  }

  abort(): void {
    this.aborted = true;
    for (const listener of [...this.listeners]) listener();
  }
}

/** Lets the event loop turn a few times, so whatever the scheduler set up with setImmediate has run. */
export async function eventLoopTurns(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** The scheduler tests' model: input 'x' FP32 [batch, 2]; each answer tells which rows it was cut from. */
export type Row = [number, number];

export const x = (...rows: Row[]): Tensor => ({ name: 'x', datatype: 'FP32', shape: [rows.length, 2], data: Float32Array.from(rows.flat()) });

/** The rows of a [rows, n] tensor of numbers. */
export function rowsOf(tensor: Tensor): number[][] {
  const width = tensor.shape[1];
  const values = Array.from(tensor.data as Float32Array, Number);
  return Array.from({ length: tensor.shape[0] }, (_, row) => values.slice(row * width, (row + 1) * width));
}
