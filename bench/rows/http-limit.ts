/**
 * Row 1, the HTTP limit: the server's req/s on the demo classifier (batching on with its defaults)
 * vs a bare Fastify server parsing the same body, closed loop at BENCH_CONNECTIONS. Target >= 0.80x.
 */
import type { BenchRow } from '../bench-row.js';
import { settings } from '../harness.js';
import type { LoadResult } from '../load.js';
import type { ClosedLoopRun } from '../measure.js';
import { answered, figuresJson, int, mainThreadUsPerRequest, shortfallWhy, x, type TargetRow } from '../report.js';
import { classifierBody } from '../workloads.js';
import { CLASSIFIER_HTTP_RUNS } from './classifier-http-runs.js';

const TARGET = 0.8;

/** Closed loops' failures (503s are the queue policy at work: counted, not failures) and rejections. */
export function closedLoopChecks(runs: readonly (readonly [string, LoadResult])[]): { problems: string[]; notes: string[] } {
  const problems: string[] = [];
  const notes: string[] = [];
  for (const [name, load] of runs) {
    if (load.non2xx - load.rejected + load.errors + load.timeouts > 0 || load.requests === 0) {
      problems.push(`${name}: ${load.requests} answered 2xx, ${load.non2xx - load.rejected} non-2xx other than 503, ${load.errors} errors, ${load.timeouts} timeouts`);
    }
    if (load.rejected > 0) notes.push(`${name}: ${int(load.rejected)} requests rejected (503, queue full); the rates count 2xx answers only`);
  }
  return { problems, notes };
}

/**
 * A row of the server's req/s against bare Fastify's on the same load (target >= 0.80x); a miss is
 * explained by the main-thread CPU each spends per request.
 */
export function againstBareFastify(id: number, target: string, server: ClosedLoopRun, fastify: ClosedLoopRun): { row: TargetRow; ratio: number } {
  const ratio = server.load.requestsPerSecond / fastify.load.requestsPerSecond;
  const serverUs = mainThreadUsPerRequest(server.window, answered(server.load));
  const fastifyUs = mainThreadUsPerRequest(fastify.window, answered(fastify.load));
  let why: string | undefined;
  if (ratio < TARGET && server.window.cpu && serverUs !== undefined && fastifyUs !== undefined) {
    why = shortfallWhy(server.window, 'server', `${serverUs.toFixed(0)} µs of main-thread CPU per request vs ${fastifyUs.toFixed(0)} µs for bare Fastify`);
  }
  const row: TargetRow = {
    id,
    target,
    measured: `server ${int(server.load.requestsPerSecond)} req/s`,
    baseline: `bare Fastify ${int(fastify.load.requestsPerSecond)} req/s`,
    value: x(ratio),
    required: `>= ${x(TARGET)}`,
    met: ratio >= TARGET,
    why,
  };
  return { row, ratio };
}

export const httpLimit: BenchRow = {
  name: 'http',
  loads: 0,
  uses: [CLASSIFIER_HTTP_RUNS],
  async run(bench) {
    const { server, fastify, answer } = await bench.shared(CLASSIFIER_HTTP_RUNS);
    const { row, ratio } = againstBareFastify(1, 'HTTP limit, req/s (classifier)', server, fastify);
    return {
      rows: [row],
      ...closedLoopChecks([
        ['1. server', server.load],
        ['1. bare Fastify', fastify.load],
      ]),
      loadText: `closed loop (autocannon) at ${settings.connections} connections for 1-3, 7 and 8`,
      settings: { requestBytes: { classifier: classifierBody().length }, classifierAnswerBytes: answer.length },
      figures: { httpRatio: ratio },
      scenarios: {
        server: { ...server.load, cpu: server.window.cpu, stats: server.window.stats, runs: server.window.figures && figuresJson(server.window.figures) },
        bareFastify: { ...fastify.load, cpu: fastify.window.cpu },
      },
      runs: [
        ['server', server],
        ['bare Fastify', fastify],
      ],
    };
  },
};
