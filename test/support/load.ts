import { setTimeout as sleep } from 'node:timers/promises';
import { summarize } from '../../bench/stats.js';
import { parsePrometheusText, type Sample } from './prometheus-text.js';
import { Status, type CallOptions, type InferenceClient, type ModelInferRequest, type ServiceError } from './grpc-client.js';

/**
 * Load for the fault suite (test/chaos): closed loops (N clients, each sending its next request
 * once answered) and paced open loops (a fixed rate, whatever the answers), over HTTP (fetch) and
 * gRPC (the test client), recording each answer's status and latency, and one-line figures to print.
 */

/** What one request got back, told apart the way the fault suite needs. */
export interface Answer {
  readonly transport: 'http' | 'grpc';
  /** HTTP: the status ('200', '503'); gRPC: the status name ('OK', 'UNAVAILABLE'); no answer: the error's code ('ECONNREFUSED'). */
  readonly status: string;
  /** Why it failed: the `error` of an HTTP body, a gRPC status' details, a network error's message. */
  readonly message?: string;
  /** The retry hint: the Retry-After header (HTTP) or the retry-after trailer (gRPC). */
  readonly retryAfter?: string;
  /** The version that computed a successful answer. */
  readonly modelVersion?: string;
  /** A successful answer: the parsed JSON body (HTTP) or the ModelInferResponse (gRPC). */
  readonly body?: any;
}

/** When and by whom a load loop sent a request, and how long its answer took. */
export interface Timing {
  /** Which client of the loop sent it. */
  readonly client: number;
  /** performance.now() when it was sent. */
  readonly sentAtMs: number;
  readonly latencyMs: number;
}

/** An answer as a load loop recorded it (with whatever else the sender noted: `A`). */
export type Outcome<A extends Answer = Answer> = A & Timing;

export const succeeded = (answer: Answer): boolean => answer.status === '200' || answer.status === 'OK';

/** POSTs a body as JSON (sent as it is, bad JSON included; `headers` may change the content type); never throws. */
export async function httpPost(url: string, body: string | Uint8Array, headers: Record<string, string> = {}): Promise<Answer> {
  try {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    const text = await response.text();
    let parsed: any = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: kept as text
    }
    const ok = response.status === 200;
    return {
      transport: 'http',
      status: String(response.status),
      message: ok ? undefined : (parsed?.error ?? text),
      retryAfter: response.headers.get('retry-after') ?? undefined,
      modelVersion: ok ? parsed?.model_version : undefined,
      body: ok ? parsed : undefined,
    };
  } catch (error) {
    return { transport: 'http', status: networkErrorCode(error), message: String((error as Error & { cause?: Error }).cause?.message ?? error) };
  }
}

/** ModelInfer over the test client; never throws. */
export async function grpcInfer(client: InferenceClient, request: ModelInferRequest, options?: CallOptions): Promise<Answer> {
  try {
    const response = await client.infer(request, options);
    return { transport: 'grpc', status: 'OK', modelVersion: response.model_version, body: response };
  } catch (error) {
    const { code, details, metadata } = error as ServiceError;
    return { transport: 'grpc', status: Status[code] ?? String(code), message: details, retryAfter: metadata?.get('retry-after')[0]?.toString() };
  }
}

/** fetch's network failures carry their cause (ECONNREFUSED, UND_ERR_SOCKET...). */
function networkErrorCode(error: unknown): string {
  const cause = (error as { cause?: { code?: string } }).cause;
  return cause?.code ?? (error as { code?: string }).code ?? (error as Error).name ?? 'network error';
}

export interface ClosedLoop<A extends Answer = Answer> {
  readonly outcomes: Outcome<A>[];
  /** Resolves once `count` more answers have arrived (counted from now). */
  further(count: number): Promise<void>;
  /** Stops sending; resolves with every outcome once the requests in flight have answered. */
  stop(): Promise<Outcome<A>[]>;
  /** Resolves when every client has stopped by itself (`stopWhen`), with every outcome. */
  readonly finished: Promise<Outcome<A>[]>;
}

/**
 * `clients` clients, each sending its next request as soon as the previous one is answered, until
 * stopped (or, per client, until `stopWhen` says so of one of its answers).
 */
export function closedLoop<A extends Answer = Answer>(options: {
  readonly clients: number;
  readonly send: (client: number, sequence: number) => Promise<A>;
  readonly stopWhen?: (answer: A) => boolean;
}): ClosedLoop<A> {
  const outcomes: Outcome<A>[] = [];
  const waiters: { target: number; resolve: () => void }[] = [];
  let stopped = false;
  const client = async (index: number) => {
    for (let sequence = 0; !stopped; sequence++) {
      const sentAtMs = performance.now();
      let answer: A;
      try {
        answer = await options.send(index, sequence);
      } catch (error) {
        answer = { transport: 'http', status: 'exception', message: String(error) } as A;
      }
      outcomes.push({ ...answer, client: index, sentAtMs, latencyMs: performance.now() - sentAtMs });
      for (const waiter of waiters.filter((w) => w.target <= outcomes.length)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
      if (options.stopWhen?.(answer)) return;
    }
  };
  const finished = Promise.all(Array.from({ length: options.clients }, (_, i) => client(i))).then(() => outcomes);
  return {
    outcomes,
    finished,
    further: (count) => new Promise((resolve) => waiters.push({ target: outcomes.length + count, resolve })),
    stop: () => {
      stopped = true;
      return finished;
    },
  };
}

/**
 * An open loop: `ratePerSecond` requests for `durationMs`, each sent when due whatever the earlier
 * ones are doing (late timers send what is due at once). Latency counts from the actual send; how
 * late the generator itself was (a busy machine) is `lateMs`, apart.
 */
export async function pacedLoad<A extends Answer = Answer>(options: {
  readonly ratePerSecond: number;
  readonly durationMs: number;
  readonly send: (sequence: number) => Promise<A>;
  /** Recorded as the outcomes' client. */
  readonly client?: number;
}): Promise<Outcome<A & { lateMs: number }>[]> {
  const total = Math.round((options.ratePerSecond * options.durationMs) / 1000);
  const intervalMs = 1000 / options.ratePerSecond;
  const start = performance.now();
  const client = options.client ?? 0;
  const inFlight: Promise<Outcome<A & { lateMs: number }>>[] = [];
  for (let sequence = 0; sequence < total; ) {
    const wait = start + sequence * intervalMs - performance.now();
    if (wait > 1) await sleep(wait);
    for (; sequence < total && start + sequence * intervalMs <= performance.now(); sequence++) {
      const sentAtMs = performance.now();
      const lateMs = sentAtMs - (start + sequence * intervalMs);
      const answered = options.send(sequence).catch((error) => ({ transport: 'http', status: 'exception', message: String(error) }) as Answer as A);
      inFlight.push(answered.then((answer) => ({ ...answer, lateMs, client, sentAtMs, latencyMs: performance.now() - sentAtMs })));
    }
  }
  return Promise.all(inFlight);
}

// ---- figures ----------------------------------------------------------------------------------

/** Occurrences of each value, in order of first appearance: `a=3 b=1` (`-` for none). */
export function tally(values: Iterable<string | number>): string {
  const counts = new Map<string, number>();
  for (const value of values) counts.set(String(value), (counts.get(String(value)) ?? 0) + 1);
  return [...counts].map(([value, count]) => `${value}=${count}`).join(' ') || '-';
}

export interface Latency {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Nearest-rank p50/p99 and the maximum of the outcomes' latencies (NaN without any). */
export function latencyOf(outcomes: readonly Outcome[]): Latency {
  const { p50Ms, p99Ms } = summarize(outcomes.map((o) => o.latencyMs));
  return { count: outcomes.length, p50Ms, p99Ms, maxMs: outcomes.reduce((max, o) => Math.max(max, o.latencyMs), outcomes.length === 0 ? Number.NaN : -Infinity) };
}

const ms = (value: number) => (Number.isNaN(value) ? '-' : `${value.toFixed(1)} ms`);

/** The one-line figures of a set of outcomes: counts, statuses, latency. */
export function loadFigures(name: string, outcomes: readonly Outcome[]): Record<string, string> {
  const ok = outcomes.filter(succeeded);
  const failed = outcomes.filter((o) => !succeeded(o));
  const okLatency = latencyOf(ok);
  const failedLatency = latencyOf(failed);
  return {
    [`${name} requests`]: `${outcomes.length} sent, ${ok.length} succeeded, ${failed.length} failed`,
    [`${name} statuses`]: tally(outcomes.map((o) => `${o.transport} ${o.status}`).sort()),
    [`${name} latency ok`]: `p50 ${ms(okLatency.p50Ms)}, p99 ${ms(okLatency.p99Ms)}, max ${ms(okLatency.maxMs)}`,
    ...(failed.length > 0 && { [`${name} latency failed`]: `p50 ${ms(failedLatency.p50Ms)}, p99 ${ms(failedLatency.p99Ms)}, max ${ms(failedLatency.maxMs)}` }),
  };
}

/** Prints figures one per line (`name: value`) as test diagnostics. */
export function report(t: { diagnostic(message: string): void }, figures: Record<string, string | number>): void {
  for (const [name, value] of Object.entries(figures)) t.diagnostic(`${name}: ${value}`);
}

/** Scrapes a Prometheus endpoint (throws unless it answers 200 with a readable exposition). */
export async function scrape(metricsUrl: string): Promise<Sample[]> {
  const response = await fetch(metricsUrl);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${metricsUrl} answered ${response.status}: ${text.slice(0, 200)}`);
  return parsePrometheusText(text);
}

/** Polls `probe` every `everyMs` until it returns a value (not undefined); fails after `timeoutMs`. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000, everyMs = 20): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}
