/**
 * Row 10, the HTTP limit with Triton's binary tensor extension (tritonclient's default): the
 * server's req/s on the demo classifier, its input and both outputs as binary data, vs a bare
 * Fastify server receiving the same bytes (the body read whole, its JSON header parsed) and
 * answering the server's own binary answer. Closed loop at BENCH_CONNECTIONS. Target >= 0.80x.
 */
import type { BenchRow } from '../bench-row.js';
import { figuresJson } from '../report.js';
import { classifierBinaryBody } from '../workloads.js';
import { CLASSIFIER_HTTP_RUNS } from './classifier-http-runs.js';
import { againstBareFastify, closedLoopChecks } from './http-limit.js';

export const httpBinary: BenchRow = {
  name: 'binary',
  loads: 0,
  uses: [CLASSIFIER_HTTP_RUNS],
  async run(bench) {
    const { serverBinary: server, fastifyBinary: fastify, binaryAnswerBytes } = await bench.shared(CLASSIFIER_HTTP_RUNS);
    const { row, ratio } = againstBareFastify(10, 'HTTP binary tensor data, req/s (classifier)', server, fastify);
    return {
      rows: [row],
      ...closedLoopChecks([
        ['10. server, binary', server.load],
        ['10. bare Fastify, binary', fastify.load],
      ]),
      settings: { requestBytes: { classifierBinary: classifierBinaryBody().body.length }, classifierBinaryAnswerBytes: binaryAnswerBytes },
      figures: { httpBinaryRatio: ratio },
      scenarios: {
        serverBinary: { ...server.load, cpu: server.window.cpu, stats: server.window.stats, runs: server.window.figures && figuresJson(server.window.figures) },
        bareFastifyBinary: { ...fastify.load, cpu: fastify.window.cpu },
      },
      runs: [
        ['server, binary', server],
        ['bare Fastify, binary', fastify],
      ],
    };
  },
};
