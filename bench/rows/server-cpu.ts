/**
 * Row 9, the server's CPU per request: every thread of the server process and its model instances
 * (child processes), per request answered in row 1's run, vs the bare Fastify process's per request
 * in its run. Target <= 1.5x: the whole server should cost little more than the HTTP and JSON it
 * cannot avoid.
 */
import type { BenchRow } from '../bench-row.js';
import { answered, mainThreadUsPerRequest, processUsPerRequest, x } from '../report.js';
import { CLASSIFIER_HTTP_RUNS } from './classifier-http-runs.js';

const TARGET = 1.5;

export const serverCpu: BenchRow = {
  name: 'cpu',
  loads: 0,
  uses: [CLASSIFIER_HTTP_RUNS],
  async run(bench) {
    const { server, fastify } = await bench.shared(CLASSIFIER_HTTP_RUNS);
    const serverUs = processUsPerRequest(server.window, answered(server.load));
    const fastifyUs = processUsPerRequest(fastify.window, answered(fastify.load));
    const serverMainUs = mainThreadUsPerRequest(server.window, answered(server.load));
    const ratio = serverUs !== undefined && fastifyUs !== undefined ? serverUs / fastifyUs : Number.NaN;
    const met = ratio <= TARGET;
    let why: string | undefined;
    if (Number.isNaN(ratio)) why = 'no CPU figures (not Linux)';
    else if (!met && serverMainUs !== undefined) {
      why =
        `of the server's ${serverUs!.toFixed(0)} µs per request, ${serverMainUs.toFixed(0)} µs are its main thread (HTTP, Nest, JSON, validation, the scheduler, ` +
        `the worker round trip, the answer, logging, metrics) and ${(serverUs! - serverMainUs).toFixed(0)} µs its other threads and the model instance (libuv, GC, ` +
        `the instance's decode, run and encode of batches of ${server.window.figures?.meanBatchSize.toFixed(1) ?? '-'} rows); bare Fastify spends ${fastifyUs!.toFixed(0)} µs`;
    }
    return {
      rows: [
        {
          id: 9,
          target: 'server CPU per request (classifier, HTTP JSON)',
          measured: serverUs === undefined ? 'no CPU figures' : `server ${serverUs.toFixed(0)} µs (main thread ${serverMainUs?.toFixed(0) ?? '-'} µs)`,
          baseline: fastifyUs === undefined ? 'no CPU figures' : `bare Fastify ${fastifyUs.toFixed(0)} µs`,
          value: Number.isNaN(ratio) ? '-' : x(ratio),
          required: `<= ${x(TARGET)}`,
          met,
          why,
        },
      ],
      figures: { serverCpuRatio: ratio, serverCpuUsPerRequest: serverUs, bareFastifyCpuUsPerRequest: fastifyUs },
    };
  },
};
