/**
 * Row 10, the HTTP limit with Triton's binary tensor extension (tritonclient's default): the
 * server's req/s on the demo classifier, its input and both outputs as binary data, vs a bare
 * Fastify server receiving the same bytes (the body read whole, its JSON header parsed) and
 * answering the server's own binary answer. Closed loop at BENCH_CONNECTIONS. Target >= 0.80x.
 */
import type { BenchRow } from '../bench-row.js';
import { answered, figuresJson, int, mainThreadUsPerRequest, shortfallWhy, x } from '../report.js';
import { classifierBinaryBody } from '../workloads.js';
import { CLASSIFIER_HTTP_RUNS } from './classifier-http-runs.js';
import { closedLoopChecks } from './http-limit.js';

const TARGET = 0.8;

export const httpBinary: BenchRow = {
  name: 'binary',
  loads: 0,
  uses: [CLASSIFIER_HTTP_RUNS],
  async run(bench) {
    const { serverBinary: server, fastifyBinary: fastify, binaryAnswerBytes } = await bench.shared(CLASSIFIER_HTTP_RUNS);
    const ratio = server.load.requestsPerSecond / fastify.load.requestsPerSecond;
    const serverUs = mainThreadUsPerRequest(server.window, answered(server.load));
    const fastifyUs = mainThreadUsPerRequest(fastify.window, answered(fastify.load));
    let why: string | undefined;
    if (ratio < TARGET && server.window.cpu && serverUs !== undefined && fastifyUs !== undefined) {
      why = shortfallWhy(server.window, 'server', `${serverUs.toFixed(0)} µs of main-thread CPU per request vs ${fastifyUs.toFixed(0)} µs for bare Fastify`);
    }
    return {
      rows: [
        {
          id: 10,
          target: 'HTTP binary tensor data, req/s (classifier)',
          measured: `server ${int(server.load.requestsPerSecond)} req/s`,
          baseline: `bare Fastify ${int(fastify.load.requestsPerSecond)} req/s`,
          value: x(ratio),
          required: `>= ${x(TARGET)}`,
          met: ratio >= TARGET,
          why,
        },
      ],
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
