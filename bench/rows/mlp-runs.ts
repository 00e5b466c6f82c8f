/**
 * The runs rows 2-5 read: the bare runtime (32 rows per run, the instance's intra-op threads), then
 * one server with the MLP twice, batching off and on (configs identical but max_batch_size), each
 * under the closed loop (batching on also with binary bodies), then open loops at 70% and 2x of the
 * batching-on rate.
 */
import { mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import type { SharedRuns } from '../bench-row.js';
import { children, PACED_MAX_CONNECTIONS, SEND_LAG_WARN_MS, settings, startServer, tmpDir } from '../harness.js';
import { closedLoop, measureBareRuntime, openLoop, type BareRuntimeResult, type ClosedLoopRun, type OpenLoopRun } from '../measure.js';
import { cpuText, int, ms } from '../report.js';
import { runFigures } from '../server-stats.js';
import { checkedMlpInfer, MLP_BATCHING, MLP_MAX_BATCH_SIZE, MLP_MAX_QUEUE_DELAY_MICROS, MLP_NO_BATCHING, mlpBinaryBody, mlpBody, writeMlpRepository } from '../workloads.js';

/** The loads of 4 and 5, as fractions of 3's batching-on req/s. */
export const LATENCY_LOAD = 0.7;
export const OVERLOAD_LOAD = 2;

export interface MlpRuns {
  readonly bare: BareRuntimeResult;
  readonly off: ClosedLoopRun;
  readonly on: ClosedLoopRun;
  /** The batching-on loop with the binary body (the 512 values as binary data). */
  readonly onBinary: ClosedLoopRun;
  readonly latency: OpenLoopRun;
  readonly overload: OpenLoopRun;
  /** One batch's compute time, and where it was read. */
  readonly batchCompute: { readonly ms: number; readonly source: string };
  /** 4's p99 target, 5's accepted-p99 target: 2 x (max_queue_delay + one batch's compute). */
  readonly p99TargetMs: number;
}

export const MLP_RUNS: SharedRuns<MlpRuns> = {
  name: 'MLP: bare runtime, server batching off and on, open loops',
  loads: 6,
  async measure() {
    const mlpRepository = await mkdtemp(path.join(tmpDir(), 'mlp-models-'));
    const mlpFile = await writeMlpRepository(mlpRepository, settings.mlpThreads);
    const bare = await measureBareRuntime(mlpFile, MLP_MAX_BATCH_SIZE, settings.mlpThreads);
    const mlp = await startServer('server-mlp', mlpRepository);
    let off: ClosedLoopRun;
    let on: ClosedLoopRun;
    let onBinary: ClosedLoopRun;
    let latency: OpenLoopRun;
    let overload: OpenLoopRun;
    try {
      const urlOf = (model: string): string => `${mlp.base}/v2/models/${model}/infer`;
      await checkedMlpInfer(urlOf(MLP_BATCHING), bare.firstRow);
      await checkedMlpInfer(urlOf(MLP_NO_BATCHING), bare.firstRow);
      await checkedMlpInfer(urlOf(MLP_BATCHING), bare.firstRow, mlpBinaryBody());
      const pid = mlp.child.process.pid;
      off = await closedLoop('3. server, MLP, batching off', urlOf(MLP_NO_BATCHING), mlpBody(), pid, { stats: { base: mlp.base, model: MLP_NO_BATCHING } });
      on = await closedLoop('2+3. server, MLP, batching on', urlOf(MLP_BATCHING), mlpBody(), pid, { stats: { base: mlp.base, model: MLP_BATCHING } });
      const binary = mlpBinaryBody();
      onBinary = await closedLoop('11. server, MLP, batching on, binary tensor data', urlOf(MLP_BATCHING), binary.body, pid, { headers: binary.headers, stats: { base: mlp.base, model: MLP_BATCHING } });
      const maxRate = on.load.requestsPerSecond;
      latency = await openLoop('4. latency at 70%', mlp, LATENCY_LOAD * maxRate);
      overload = await openLoop('5. overload at 2x', mlp, OVERLOAD_LOAD * maxRate);
    } finally {
      await children.stop(mlp.child);
    }
    // One batch's compute time is read from the server's own /stats after the run: compute_infer
    // ns / count of its max-size (32-row) runs so far (scenarios 3 and 4), or, when no run was
    // that large, of all its runs.
    const maxSizeRuns = latency.cumulative.batches.get(MLP_MAX_BATCH_SIZE);
    let batchCompute: { ms: number; source: string };
    if (maxSizeRuns && maxSizeRuns.count > 0) {
      batchCompute = { ms: maxSizeRuns.ns / maxSizeRuns.count / 1e6, source: `mean compute_infer of the server's ${int(maxSizeRuns.count)} ${MLP_MAX_BATCH_SIZE}-row runs (scenarios 3 and 4), from its /stats` };
    } else {
      const all = runFigures(latency.cumulative, 1);
      batchCompute = { ms: all.meanRunMs, source: `mean compute_infer of all the server's runs (none of ${MLP_MAX_BATCH_SIZE} rows), from its /stats` };
    }
    const p99TargetMs = 2 * (MLP_MAX_QUEUE_DELAY_MICROS / 1000 + batchCompute.ms);
    return { bare, off, on, onBinary, latency, overload, batchCompute, p99TargetMs };
  },
};

/** Why an open-loop run's latencies are what they are: throughput, where the time went, the generator. */
export function openLoopReasons(run: OpenLoopRun): string[] {
  const l = run.load;
  const reasons: string[] = [];
  if (l.answeredPerSecond < 0.95 * l.offeredRate) {
    reasons.push(
      `the server answered ${int(l.answeredPerSecond)} of the ${int(l.offeredRate)} req/s offered, so requests piled up` +
        (l.connectionsPeak >= PACED_MAX_CONNECTIONS ? ` (all ${PACED_MAX_CONNECTIONS} client connections waiting)` : '') +
        (run.window.cpu ? ` - ${cpuText(run.window.cpu)}` : ''),
    );
  } else if (l.sendLagP99Ms > SEND_LAG_WARN_MS) {
    reasons.push(`the load generator sent late (send lag p99 ${ms(l.sendLagP99Ms)}, counted in the latency)`);
  }
  if (l.serverTimes) {
    const t = l.serverTimes;
    reasons.push(`200s: queue p99 ${ms(t.queueP99Ms)}, compute p99 ${ms(t.computeP99Ms)} (runs of ${t.meanBatchSize.toFixed(1)} rows); the rest is HTTP, JSON and the main thread`);
  }
  return reasons;
}
