/**
 * Rows 12 and 13, the cost of a request on the thread that owns the schedulers: the ceiling of one
 * model version's throughput once the protocol work (parsing, validation, encoding, logging) runs
 * on ingress threads. Row 12 is the main thread's CPU per request with INGRESS_THREADS=1 (target
 * <= 15 µs), beside its figure with no ingress thread (row 1's run, where it does everything).
 * Row 13 is what the protocol work costs on the ingress thread, and the requests per second of the
 * two runs: on 2 cores the ingress thread, the main thread, the model instance and the load
 * generator share them, so that ratio shows the machine, not the design.
 */
import type { BenchRow } from '../bench-row.js';
import { answered, int, mainThreadUsPerRequest, x } from '../report.js';
import { CLASSIFIER_HTTP_RUNS } from './classifier-http-runs.js';
import { CLASSIFIER_INGRESS_RUN } from './classifier-ingress-run.js';

const TARGET_US = 15;

export const schedulerThread: BenchRow = {
  name: 'scheduler',
  loads: 0,
  uses: [CLASSIFIER_HTTP_RUNS, CLASSIFIER_INGRESS_RUN],
  async run(bench) {
    const { server } = await bench.shared(CLASSIFIER_HTTP_RUNS);
    const ingress = await bench.shared(CLASSIFIER_INGRESS_RUN);
    const alone = mainThreadUsPerRequest(server.window, answered(server.load));
    const us = mainThreadUsPerRequest(ingress.window, answered(ingress.load));
    const requests = answered(ingress.load);
    const otherUs = ingress.window.cpu ? (ingress.window.cpu.serverOtherThreadsMs * 1000) / requests : undefined;
    const met = us !== undefined && us <= TARGET_US;
    const rate = (run: typeof server) => run.load.requestsPerSecond;
    return {
      rows: [
        {
          id: 12,
          target: 'scheduler-owning thread CPU per request (classifier, HTTP JSON, INGRESS_THREADS=1)',
          measured: us === undefined ? 'no CPU figures' : `main thread ${us.toFixed(0)} µs`,
          baseline: alone === undefined ? '-' : `${alone.toFixed(0)} µs with no ingress thread; ceiling ${us === undefined ? '-' : int(1e6 / us)} req/s per version`,
          value: us === undefined ? '-' : `${us.toFixed(0)} µs`,
          required: `<= ${TARGET_US} µs`,
          met,
          why: met
            ? undefined
            : us === undefined
              ? 'no CPU figures (not Linux)'
              : `with the protocol work on the ingress thread, the main thread still takes each decoded request from its message port, routes, validates and ` +
                `queues it, batches, sends the batch to the model instance and the answer back with its outputs transferred: ${us.toFixed(0)} µs per request`,
        },
        {
          id: 13,
          target: 'ingress thread: req/s with INGRESS_THREADS=1 ÷ none (2 cores: informational)',
          measured: `${int(rate(ingress))} req/s; ingress thread and instance ${otherUs === undefined ? '-' : otherUs.toFixed(0)} µs per request`,
          baseline: `${int(rate(server))} req/s with no ingress thread`,
          value: x(rate(ingress) / rate(server)),
          required: 'reported',
          met: true,
        },
      ],
      figures: { schedulerThreadUsPerRequest: us, mainThreadUsPerRequestWithoutIngress: alone, ingressAndInstanceUsPerRequest: otherUs, ingressRatio: rate(ingress) / rate(server) },
    };
  },
};
