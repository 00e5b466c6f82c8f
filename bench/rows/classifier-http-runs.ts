/**
 * The runs rows 1, 9, 10 and 12 read: the server on the demo classifier under the closed loop, with
 * JSON bodies then with Triton's binary tensor extension; then a bare Fastify server answering the
 * server's own answers to the same bodies, each server in a process of its own.
 */
import type { SharedRuns } from '../bench-row.js';
import { children, classifierUrl, startServer } from '../harness.js';
import { closedLoop, classifierLoop, measureBareFastify, type ClosedLoopRun } from '../measure.js';
import { CLASSIFIER, checkedClassifierBinaryAnswer, checkedClassifierInfer, classifierBinaryBody } from '../workloads.js';

export interface ClassifierHttpRuns {
  readonly server: ClosedLoopRun;
  readonly fastify: ClosedLoopRun;
  /** The same loops with the binary body (the classifier's input and outputs as binary data). */
  readonly serverBinary: ClosedLoopRun;
  readonly fastifyBinary: ClosedLoopRun;
  /** The server's answer to the classifier body (the bare server answers it too). */
  readonly answer: string;
  /** Bytes of the server's answer to the binary body. */
  readonly binaryAnswerBytes: number;
}

export const CLASSIFIER_HTTP_RUNS: SharedRuns<ClassifierHttpRuns> = {
  name: 'classifier over HTTP (JSON and binary), server and bare Fastify',
  loads: 4,
  async measure(bench) {
    const demo = await startServer('server-demo', bench.demoRepository);
    let server: ClosedLoopRun;
    let serverBinary: ClosedLoopRun;
    let answer: string;
    let binaryAnswer: { body: Buffer; headers: Headers };
    try {
      const url = classifierUrl(demo);
      answer = await checkedClassifierInfer(url);
      server = await classifierLoop('1. server, classifier', demo);
      binaryAnswer = await checkedClassifierBinaryAnswer(url);
      const { body, headers } = classifierBinaryBody();
      serverBinary = await closedLoop('10. server, classifier, binary tensor data', url, body, demo.child.process.pid, { headers, stats: { base: demo.base, model: CLASSIFIER } });
    } finally {
      await children.stop(demo.child);
    }
    const bare = await measureBareFastify(answer, binaryAnswer);
    return { server, fastify: bare.json, serverBinary, fastifyBinary: bare.binary!, answer, binaryAnswerBytes: binaryAnswer.body.length };
  },
};
