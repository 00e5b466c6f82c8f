/**
 * The runs rows 1 and 9 read: the server on the demo classifier under the closed loop, then a bare
 * Fastify server answering the server's own answer to the same body, each in a process of its own.
 */
import type { SharedRuns } from '../bench-row.js';
import { children, classifierUrl, startServer } from '../harness.js';
import { classifierLoop, measureBareFastify, type ClosedLoopRun } from '../measure.js';
import { checkedClassifierInfer } from '../workloads.js';

export interface ClassifierHttpRuns {
  readonly server: ClosedLoopRun;
  readonly fastify: ClosedLoopRun;
  /** The server's answer to the classifier body (the bare server answers it too). */
  readonly answer: string;
}

export const CLASSIFIER_HTTP_RUNS: SharedRuns<ClassifierHttpRuns> = {
  name: 'classifier over HTTP, server and bare Fastify',
  loads: 2,
  async measure(bench) {
    const demo = await startServer('server-demo', bench.demoRepository);
    let server: ClosedLoopRun;
    let answer: string;
    try {
      answer = await checkedClassifierInfer(classifierUrl(demo));
      server = await classifierLoop('1. server, classifier', demo);
    } finally {
      await children.stop(demo.child);
    }
    const fastify = await measureBareFastify(answer);
    return { server, fastify, answer };
  },
};
