/**
 * Row 2, the compute limit: the server's samples/s on the MLP vs InferenceSession.run of 32 rows in
 * a loop with the instance's intra-op threads. Target >= 0.85x. The server's figure is the
 * batching-on run of 3: clients send batch-1 requests at BENCH_CONNECTIONS and the server batches
 * them up to 32, as real clients would, so it includes the HTTP and JSON cost of 32 requests per run.
 */
import type { BenchRow } from '../bench-row.js';
import { settings } from '../harness.js';
import { answered, figuresJson, int, machineBusy, mainThreadText, mainThreadUsPerRequest, ms, pct, x } from '../report.js';
import type { BareRuntimeResult, ClosedLoopRun } from '../measure.js';
import { MLP_MAX_BATCH_SIZE, mlpBody } from '../workloads.js';
import { MLP_RUNS } from './mlp-runs.js';

/** Rows 2 and 11's target. */
export const TARGET = 0.85;

/** Why the server's samples/s on `on` (a batching-on run) fell short of the bare runtime's, read from its window. */
export function computeShortfall(on: ClosedLoopRun, bare: BareRuntimeResult): { ratio: number; reasons: string[] } {
  const onFigures = on.window.figures;
  const samples = on.load.requestsPerSecond;
  const ratio = samples / bare.samplesPerSecond;
  const reasons: string[] = [];
  if (ratio < TARGET && onFigures) {
    const us = mainThreadUsPerRequest(on.window, answered(on.load));
    if (onFigures.computeBusyFraction < 0.9) {
      reasons.push(`the instance computed only ${pct(onFigures.computeBusyFraction)} of the time: HTTP-bound, not compute-bound`);
      const needed = TARGET * bare.samplesPerSecond;
      const cpu = on.window.cpu;
      if (us !== undefined && cpu && 1e6 / us < needed) {
        reasons.push(`at ${us.toFixed(0)} µs of main-thread CPU per request one core parses at most ${int(1e6 / us)} batch-1 requests/s, fewer than the ${int(needed)} needed`);
      } else if (cpu && (cpu.serverMainThreadWaiting ?? 0) >= 0.1) {
        reasons.push(`the ${mainThreadText(cpu)} was short of CPU, shared with the intra-op threads and the load generator${machineBusy(cpu)}`);
      }
    }
    if (onFigures.meanBatchSize < 0.9 * MLP_MAX_BATCH_SIZE) reasons.push(`runs averaged ${onFigures.meanBatchSize.toFixed(1)} of ${MLP_MAX_BATCH_SIZE} rows`);
    const serverRunMs = onFigures.runMsAt(MLP_MAX_BATCH_SIZE);
    if (serverRunMs !== undefined && serverRunMs > 1.15 * bare.meanMs) {
      reasons.push(
        `a ${MLP_MAX_BATCH_SIZE}-row run took ${ms(serverRunMs)} in the server vs ${ms(bare.meanMs)} alone: its ${settings.mlpThreads} intra-op threads share ` +
          `the CPUs with the main thread and the load generator${machineBusy(on.window.cpu)}`,
      );
    }
  }
  return { ratio, reasons };
}

export const computeLimit: BenchRow = {
  name: 'compute',
  loads: 0,
  uses: [MLP_RUNS],
  async run(bench) {
    const { bare, on } = await bench.shared(MLP_RUNS);
    const onFigures = on.window.figures;
    const samples = on.load.requestsPerSecond;
    const { ratio, reasons } = computeShortfall(on, bare);
    return {
      rows: [
        {
          id: 2,
          target: 'compute limit, samples/s (MLP)',
          measured: `server ${int(samples)} samples/s` + (onFigures ? ` (runs of ${onFigures.meanBatchSize.toFixed(1)} rows)` : ''),
          baseline: `bare runtime ${int(bare.samplesPerSecond)} samples/s (runs of ${bare.batch}, ${bare.threads} thread${bare.threads > 1 ? 's' : ''})`,
          value: x(ratio),
          required: `>= ${x(TARGET)}`,
          met: ratio >= TARGET,
          why: reasons.length > 0 ? reasons.join('; ') : undefined,
        },
      ],
      settings: { requestBytes: { mlp: mlpBody().length } },
      figures: { computeRatio: ratio },
      scenarios: {
        bareRuntime: { ...bare, firstRow: undefined },
        mlpBatchingOn: { ...on.load, cpu: on.window.cpu, stats: on.window.stats, runs: onFigures && figuresJson(onFigures) },
      },
      runs: [['server, MLP, batching on', on]],
    };
  },
};
