/**
 * The run rows 12 and 13 read: the server on the demo classifier under the same closed loop as
 * row 1, with INGRESS_THREADS=1: one ingress thread reads, decodes and encodes, and the main thread
 * only runs the schedulers (and what the thread forwards).
 */
import type { SharedRuns } from '../bench-row.js';
import { children, startServer } from '../harness.js';
import { classifierLoop, type ClosedLoopRun } from '../measure.js';

export const CLASSIFIER_INGRESS_RUN: SharedRuns<ClosedLoopRun> = {
  name: 'classifier over HTTP with one ingress thread',
  loads: 1,
  async measure(bench) {
    const server = await startServer('server-ingress', bench.demoRepository, { INGRESS_THREADS: '1' });
    try {
      return await classifierLoop('12. server, classifier, INGRESS_THREADS=1', server);
    } finally {
      await children.stop(server.child);
    }
  },
};
