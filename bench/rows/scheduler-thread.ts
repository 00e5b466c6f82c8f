/**
 * Row 12, CPU per request on the thread that owns the schedulers: the ceiling of one model
 * version's throughput once the protocol work (parsing, validation, encoding, logging) runs on
 * other threads. Target <= 15 µs. Here that thread is the main thread, which also does all of the
 * protocol work: its figure is the main thread's CPU per request in row 1's run, and a miss says so.
 */
import type { BenchRow } from '../bench-row.js';
import { answered, int, mainThreadUsPerRequest } from '../report.js';
import { CLASSIFIER_HTTP_RUNS } from './classifier-http-runs.js';

const TARGET_US = 15;

export const schedulerThread: BenchRow = {
  name: 'scheduler',
  loads: 0,
  uses: [CLASSIFIER_HTTP_RUNS],
  async run(bench) {
    const { server } = await bench.shared(CLASSIFIER_HTTP_RUNS);
    const us = mainThreadUsPerRequest(server.window, answered(server.load));
    const met = us !== undefined && us <= TARGET_US;
    return {
      rows: [
        {
          id: 12,
          target: 'scheduler-owning thread CPU per request (classifier, HTTP JSON)',
          measured: us === undefined ? 'no CPU figures' : `main thread ${us.toFixed(0)} µs`,
          baseline: `ceiling ${us === undefined ? '-' : int(1e6 / us)} req/s per version`,
          value: us === undefined ? '-' : `${us.toFixed(0)} µs`,
          required: `<= ${TARGET_US} µs`,
          met,
          why: met
            ? undefined
            : us === undefined
              ? 'no CPU figures (not Linux)'
              : `the schedulers are owned by the main thread, which also reads, parses, validates, encodes and logs every request (one ingress thread): ` +
                `all of its ${us.toFixed(0)} µs per request count, so one version's ceiling is one core's worth of the whole protocol path`,
        },
      ],
      figures: { schedulerThreadUsPerRequest: us },
    };
  },
};
