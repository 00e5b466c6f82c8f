/**
 * Row 11, the compute limit with binary input: row 2 with each batch-1 request's 512 values sent as
 * Triton's binary tensor data instead of JSON numbers (the logits answered as JSON), vs the same
 * bare runtime. Target >= 0.85x.
 */
import type { BenchRow } from '../bench-row.js';
import { figuresJson, int, x } from '../report.js';
import { mlpBinaryBody } from '../workloads.js';
import { computeShortfall, TARGET } from './compute-limit.js';
import { closedLoopChecks } from './http-limit.js';
import { MLP_RUNS } from './mlp-runs.js';

export const computeBinary: BenchRow = {
  name: 'compute-binary',
  loads: 0,
  uses: [MLP_RUNS],
  async run(bench) {
    const { bare, onBinary } = await bench.shared(MLP_RUNS);
    const figures = onBinary.window.figures;
    const { ratio, reasons } = computeShortfall(onBinary, bare);
    return {
      rows: [
        {
          id: 11,
          target: 'compute limit, binary input, samples/s (MLP)',
          measured: `server ${int(onBinary.load.requestsPerSecond)} samples/s` + (figures ? ` (runs of ${figures.meanBatchSize.toFixed(1)} rows)` : ''),
          baseline: `bare runtime ${int(bare.samplesPerSecond)} samples/s (runs of ${bare.batch})`,
          value: x(ratio),
          required: `>= ${x(TARGET)}`,
          met: ratio >= TARGET,
          why: reasons.length > 0 ? reasons.join('; ') : undefined,
        },
      ],
      ...closedLoopChecks([['11. batching on, binary', onBinary.load]]),
      settings: { requestBytes: { mlpBinary: mlpBinaryBody().body.length } },
      figures: { computeBinaryRatio: ratio },
      scenarios: { mlpBatchingOnBinary: { ...onBinary.load, cpu: onBinary.window.cpu, stats: onBinary.window.stats, runs: figures && figuresJson(figures) } },
      runs: [['server, MLP, batching on, binary', onBinary]],
    };
  },
};
