// Child process of test/integration/onnx/runaway-run.test.ts: a server stand-in whose session worker
// computes a run that never ends, then ends as the test says: `exit` (process.exit, as the shutdown's
// grace timer does) or `wait` (until the test kills it with SIGKILL). Prints the worker's pid first.
import { SessionWorkerPool } from '../../src/infra/onnx/session-worker-pool.js';

const [modelPath, mode] = process.argv.slice(2);
const { pool } = await SessionWorkerPool.start({ modelPath: modelPath!, executionProviders: ['cpu'], intraOpThreads: 1, interOpThreads: 1, allowSpinning: false, logSeverityLevel: 2 }, 1, (line) => process.stderr.write(`${line}\n`));
void pool.run(
  [
    [
      { name: 'trip_count', datatype: 'INT64', shape: [1], data: BigInt64Array.of(10n ** 12n) },
      { name: 'x', datatype: 'FP32', shape: [1], data: Float32Array.of(0) },
    ],
  ],
  ['y'],
).catch(() => undefined);
process.stdout.write(`${pool.pids[0]}\n`);
// A moment for the run to start in the worker: the point is to end while it computes.
setTimeout(() => {
  if (mode === 'exit') process.exit(3);
}, 200);
setInterval(() => undefined, 60_000);
