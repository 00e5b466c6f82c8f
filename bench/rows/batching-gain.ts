/**
 * Row 3, the batching gain: the MLP with batching on (max_batch_size 32) vs off (max_batch_size 1,
 * the same config otherwise), batch-1 requests, closed loop at BENCH_CONNECTIONS. Target >= 3x req/s.
 */
import type { BenchRow } from '../bench-row.js';
import { figuresJson, int, machineBusy, mainThreadText, ms, pct, x } from '../report.js';
import { MLP_MAX_BATCH_SIZE } from '../workloads.js';
import { closedLoopChecks } from './http-limit.js';
import { MLP_RUNS } from './mlp-runs.js';

const TARGET = 3;

export const batchingGain: BenchRow = {
  name: 'batching',
  loads: 0,
  uses: [MLP_RUNS],
  async run(bench) {
    const { on, off } = await bench.shared(MLP_RUNS);
    const gain = on.load.requestsPerSecond / off.load.requestsPerSecond;
    const offFigures = off.window.figures;
    const onFigures = on.window.figures;
    let why: string | undefined;
    if (gain < TARGET && offFigures && onFigures) {
      why =
        `off: 1-row runs of ${ms(offFigures.meanRunMs)}, instance busy ${pct(offFigures.computeBusyFraction)}; ` +
        `on: runs of ${onFigures.meanBatchSize.toFixed(1)} rows, instance busy ${pct(onFigures.computeBusyFraction)}` +
        (on.window.cpu ? `, ${mainThreadText(on.window.cpu)}${machineBusy(on.window.cpu)}` : '') +
        (onFigures.computeBusyFraction < 0.9 ? ' - with batching on the model is not the limit (see 2)' : '');
    }
    return {
      rows: [
        {
          id: 3,
          target: 'batching gain, req/s (MLP)',
          measured: `on (max_batch_size ${MLP_MAX_BATCH_SIZE}) ${int(on.load.requestsPerSecond)} req/s`,
          baseline: `off (max_batch_size 1) ${int(off.load.requestsPerSecond)} req/s`,
          value: x(gain),
          required: `>= ${x(TARGET)}`,
          met: gain >= TARGET,
          why,
        },
      ],
      ...closedLoopChecks([
        ['3. batching off', off.load],
        ['2+3. batching on', on.load],
      ]),
      figures: { batchingGain: gain },
      scenarios: { mlpBatchingOff: { ...off.load, cpu: off.window.cpu, stats: off.window.stats, runs: offFigures && figuresJson(offFigures) } },
      runs: [['server, MLP, batching off', off]],
    };
  },
};
