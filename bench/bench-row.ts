/**
 * The contract between bench/run.ts and the rows it prints. A row is a module in bench/rows/ (or
 * anywhere under bench/) exporting a {@link BenchRow}; adding one to `npm run bench` is one import
 * and one entry in bench/rows/index.ts. A row measures what it needs (starting its servers and
 * baselines through bench/harness.ts and bench/measure.ts, stopping them before it returns) and
 * reports its table rows, the problems that make its figures invalid, notes, and its part of the
 * results file. Rows that read the same runs (2-5 all read the MLP server's) ask the context for
 * a {@link SharedRuns}, measured once per bench run by whichever row asks first.
 */
import type { Window } from './measure.js';
import type { TargetRow } from './report.js';

export interface Machine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly platform: string;
  readonly totalMemoryGiB?: number;
  readonly node: string;
  readonly onnxruntime: string;
  readonly fastify: string;
  readonly grpcJs: string;
  readonly autocannon: string;
}

/** A run (or set of runs) several rows read, measured once per bench run. */
export interface SharedRuns<T> {
  /** Names it in the log; unique among shared runs. */
  readonly name: string;
  /** Loads of BENCH_DURATION_SECONDS + BENCH_WARMUP_SECONDS it runs (for the run's time budget). */
  readonly loads: number;
  measure(bench: BenchContext): Promise<T>;
}

export interface BenchContext {
  readonly machine: Machine;
  /** The demo model repository (`npm run models`' models), built once before the first row runs. */
  readonly demoRepository: string;
  /** `runs`' result, measured at the first call of the bench run and shared by every row that asks. */
  shared<T>(runs: SharedRuns<T>): Promise<T>;
}

/** A run the BENCH_ONLY report prints CPU and latencies of. */
export type RunLine = readonly [string, { readonly load: { readonly p50Ms: number; readonly p99Ms: number }; readonly window: Window }];

export interface RowReport {
  /** Its rows of the table, numbered as they are printed (their `id`). */
  readonly rows: readonly TargetRow[];
  /** What makes the figures invalid (requests failed where none may, a run that did not measure what it says): exit code 1. A missed target is not one. */
  readonly problems?: readonly string[];
  readonly notes?: readonly string[];
  /** Lines printed after the missed targets' reasons (where a target's figure comes from). */
  readonly footnotes?: readonly string[];
  /** How its loads ran, one clause of the printed "load:" line. */
  readonly loadText?: string;
  /** Its parts of the results file (bench/results/*.json): `figures` (its ratios), `scenarios` (each load), `settings` (merged). */
  readonly figures?: Readonly<Record<string, unknown>>;
  readonly scenarios?: Readonly<Record<string, unknown>>;
  readonly settings?: Readonly<Record<string, unknown>>;
  /** Printed by BENCH_ONLY runs: each load's CPU and latencies. */
  readonly runs?: readonly RunLine[];
}

export interface BenchRow {
  /** What BENCH_ONLY names it by (comma-separated names run several rows). */
  readonly name: string;
  /** Loads of D + W seconds it runs itself (shared runs counted apart, once). */
  readonly loads: number;
  /** The shared runs it reads, for the time budget. */
  readonly uses?: readonly SharedRuns<unknown>[];
  run(bench: BenchContext): Promise<RowReport>;
}
