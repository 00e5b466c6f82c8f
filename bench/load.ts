/**
 * HTTP load with autocannon: a discarded warm-up run, then the measured run. Latencies are taken
 * from autocannon's per-response event (sub-millisecond floats) rather than its 1 ms histogram.
 */
import autocannon from 'autocannon';
import { summarize, type LatencySummary } from './stats.js';

export interface LoadOptions {
  readonly url: string;
  /** The request body, POSTed with content-type application/json unless `headers` name another. */
  readonly body: string | Buffer;
  /** Headers sent with every request (e.g. the API key a rate limit counts by, the binary extension's header length). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly connections: number;
  readonly durationSeconds: number;
  readonly warmupSeconds: number;
  /** Called just before the measured run starts and just after it ends (e.g. to sample CPU time). */
  readonly onMeasureStart?: () => void | Promise<void>;
  readonly onMeasureEnd?: () => void | Promise<void>;
}

export interface LoadResult extends LatencySummary {
  /** 2xx answers per second of the measured run (latencies are of the 2xx answers too). */
  readonly requestsPerSecond: number;
  /** 2xx answers in the measured run. */
  readonly requests: number;
  readonly durationSeconds: number;
  /** Answers other than 2xx, of which `rejected` were 503 (queue full, in-flight limit); all of them by status. */
  readonly non2xx: number;
  readonly rejected: number;
  readonly non2xxByStatus: Readonly<Record<string, number>>;
  readonly errors: number;
  readonly timeouts: number;
}

async function once(options: LoadOptions, durationSeconds: number, latenciesMs?: number[]): Promise<autocannon.Result> {
  const instance = autocannon({
    url: options.url,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...options.headers },
    body: options.body,
    connections: options.connections,
    pipelining: 1,
    duration: durationSeconds,
    timeout: 10,
  });
  if (latenciesMs) {
    instance.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
      if (statusCode >= 200 && statusCode < 300) latenciesMs.push(responseTimeMs);
    });
  }
  return await instance;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  if (options.warmupSeconds > 0) await once(options, options.warmupSeconds);
  const latenciesMs: number[] = [];
  await options.onMeasureStart?.();
  const result = await once(options, options.durationSeconds, latenciesMs);
  await options.onMeasureEnd?.();
  return {
    requestsPerSecond: result['2xx'] / result.duration,
    requests: result['2xx'],
    durationSeconds: result.duration,
    non2xx: result.non2xx,
    rejected: result.statusCodeStats['503']?.count ?? 0,
    non2xxByStatus: Object.fromEntries(
      Object.entries(result.statusCodeStats)
        .filter(([status, { count }]) => !status.startsWith('2') && count > 0)
        .map(([status, { count }]) => [status, count]),
    ),
    errors: result.errors,
    timeouts: result.timeouts,
    ...summarize(latenciesMs),
  };
}
