/**
 * The rows `npm run bench` runs and prints, in this order. Adding a row: a module exporting a
 * BenchRow (bench/bench-row.ts says what it reports; bench/rows/http-limit.ts is a small one), one
 * import here and one entry in the list. Number its table rows after the last one here.
 */
import type { BenchRow } from '../bench-row.js';
import { batchingGain } from './batching-gain.js';
import { computeLimit } from './compute-limit.js';
import { grpcLimit } from './grpc-limit.js';
import { httpLimit } from './http-limit.js';
import { latency } from './latency.js';
import { observability } from './observability.js';
import { overload } from './overload.js';
import { resilience } from './resilience.js';
import { computeBinary } from './compute-binary.js';
import { httpBinary } from './http-binary.js';
import { schedulerThread } from './scheduler-thread.js';
import { serverCpu } from './server-cpu.js';

export const BENCH_ROWS: readonly BenchRow[] = [
  httpLimit, // 1
  computeLimit, // 2
  batchingGain, // 3
  latency, // 4
  overload, // 5
  grpcLimit, // 6
  observability, // 7
  resilience, // 8
  serverCpu, // 9
  httpBinary, // 10
  computeBinary, // 11
  schedulerThread, // 12
];
