/**
 * `node .build/bench/arena-ab.js`: the cost of running without onnxruntime's CPU memory arena (the
 * server's choice, issue 15 item 9). Two sessions of the bench's MLP (32 rows, 2 intra-op threads,
 * no spinning, as target 2 of bench/run.ts), one with the arena and one without, measured in
 * alternating 150 ms windows (60 each) so that a busy machine slows both alike; prints runs/s of
 * each and their ratio.
 */
import * as ort from 'onnxruntime-node';
import { MLP_INPUT, MLP_LAYER_SIZES, mlpModel } from '../scripts/build-models.js';

const ROWS = 32;
const WINDOW_MS = 150;
const WINDOWS = 60;

const options = (arena: boolean): ort.InferenceSession.SessionOptions => ({
  enableCpuMemArena: arena,
  executionMode: 'sequential',
  intraOpNumThreads: 2,
  graphOptimizationLevel: 'all',
  extra: { session: { intra_op: { allow_spinning: '0' } } },
});
const model = mlpModel();
const withArena = await ort.InferenceSession.create(model, options(true));
const withoutArena = await ort.InferenceSession.create(model, options(false));
const feeds = () => ({ [MLP_INPUT]: new ort.Tensor('float32', new Float32Array(ROWS * MLP_LAYER_SIZES[0]).fill(0.1), [ROWS, MLP_LAYER_SIZES[0]]) });

async function runs(session: ort.InferenceSession, ms: number): Promise<number> {
  const end = performance.now() + ms;
  let count = 0;
  while (performance.now() < end) {
    await session.run(feeds());
    count++;
  }
  return count;
}

await runs(withArena, 500);
await runs(withoutArena, 500);
let on = 0;
let off = 0;
for (let window = 0; window < WINDOWS; window++) {
  on += await runs(withArena, WINDOW_MS);
  off += await runs(withoutArena, WINDOW_MS);
}
const perSecond = (count: number) => (count / ((WINDOWS * WINDOW_MS) / 1000)).toFixed(1);
console.log(`MLP, ${ROWS} rows: arena on ${perSecond(on)} runs/s, arena off ${perSecond(off)} runs/s, off/on ${(off / on).toFixed(3)}`);
