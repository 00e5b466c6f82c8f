/**
 * Row 4, latency: open loop at 70% of 3's batching-on req/s. Target p99 <= 2 x (max_queue_delay +
 * one batch's compute time), the latter read from the server's /stats after the run (compute_infer
 * of its 32-row runs).
 */
import type { BenchRow } from '../bench-row.js';
import { PACED_MAX_CONNECTIONS } from '../harness.js';
import { int, ms } from '../report.js';
import { MLP_MAX_BATCH_SIZE, MLP_MAX_QUEUE_DELAY_MICROS } from '../workloads.js';
import { MLP_RUNS, openLoopReasons } from './mlp-runs.js';

export const latency: BenchRow = {
  name: 'latency',
  loads: 0,
  uses: [MLP_RUNS],
  async run(bench) {
    const { latency: run, batchCompute, p99TargetMs } = await bench.shared(MLP_RUNS);
    const l = run.load;
    const met = l.accepted.p99Ms <= p99TargetMs && l.rejected.count === 0 && l.timeouts + l.errors + l.otherNon2xx === 0;
    const reasons = met ? [] : [...(l.rejected.count > 0 ? [`${int(l.rejected.count)} requests rejected (503) at 70% load`] : []), ...openLoopReasons(run)];
    const problems: string[] = [];
    if (l.errors + l.timeouts + l.otherNon2xx > 0 || l.accepted.count === 0) {
      problems.push(`4. latency: ${l.accepted.count} answered 200, ${l.otherNon2xx} other non-2xx (not 503), ${l.errors} errors, ${l.timeouts} timeouts`);
    }
    return {
      rows: [
        {
          id: 4,
          target: `latency at 70% load, ${int(l.offeredRate)} req/s (MLP)`,
          measured: `p50 ${ms(l.accepted.p50Ms)}, p99 ${ms(l.accepted.p99Ms)}` + (l.rejected.count > 0 ? `, ${int(l.rejected.count)} x 503` : ''),
          baseline: `2 x (${ms(MLP_MAX_QUEUE_DELAY_MICROS / 1000)} delay + ${ms(batchCompute.ms)} run of ${MLP_MAX_BATCH_SIZE})`,
          value: `p99 ${ms(l.accepted.p99Ms)}`,
          required: `p99 <= ${ms(p99TargetMs)}`,
          met,
          why: reasons.length > 0 ? reasons.join('; ') : undefined,
        },
      ],
      problems,
      footnotes: [`4/5 target: one batch's compute time = ${batchCompute.source}`],
      loadText: `open loop (fixed rate, latency from each request's due time, ${PACED_MAX_CONNECTIONS} connections) for 4-5`,
      settings: { pacedMaxConnections: PACED_MAX_CONNECTIONS },
      figures: { latencyP50Ms: l.accepted.p50Ms, latencyP99Ms: l.accepted.p99Ms, latencyP99TargetMs: p99TargetMs, batchComputeMs: batchCompute.ms, batchComputeSource: batchCompute.source },
      scenarios: { latency: { ...l, cpu: run.window.cpu, stats: run.window.stats } },
      runs: [['latency at 70%', { load: { p50Ms: l.accepted.p50Ms, p99Ms: l.accepted.p99Ms }, window: run.window }]],
    };
  },
};
