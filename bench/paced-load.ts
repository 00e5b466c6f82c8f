/**
 * Open-loop HTTP load at a fixed rate: request k is due at start + k / rate whatever happened to
 * the ones before it (perf_analyzer's "constant" request distribution), and its latency runs from
 * that due time to the end of its response, so a late answer or a load generator that falls
 * behind is counted, never hidden (no coordinated omission).
 *
 * Why not autocannon's `overallRate`: autocannon gives each connection a quota of requests per
 * one-second window and sends them back to back as fast as the server answers, then waits for
 * the next window (autocannon 9, lib/httpClient.js `_doRequest` / `rateInterval`). At 70% of the
 * maximum rate that is a closed loop at full load for ~0.7 s of every second and idle for the
 * rest: its latencies are the saturated server's, not those of a server at 70% load.
 *
 * The client is a minimal HTTP/1.1 one on raw keep-alive sockets, one request at a time per
 * socket, with a request buffer built once (as autocannon does), so the load generator costs the
 * 2-core machine as little as possible. A connection is opened when a request is due and every
 * open connection is busy, up to `maxConnections`; past that, due requests wait in the client
 * (and their wait counts in their latency).
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { summarize, type LatencySummary } from './stats.js';

export interface PacedLoadOptions {
  readonly url: string;
  /** JSON request body, POSTed with content-type application/json. */
  readonly body: string;
  readonly ratePerSecond: number;
  readonly durationSeconds: number;
  /** Same rate, just before the measured window, on the same connections; not recorded. */
  readonly warmupSeconds: number;
  readonly maxConnections: number;
  /** Connections opened before the first request (more open on demand, up to `maxConnections`). */
  readonly initialConnections: number;
  /** A request not answered within this many seconds counts as a timeout and its socket is dropped. */
  readonly timeoutSeconds: number;
  /** Called when the measured window starts and when its last request is due. */
  readonly onMeasureStart?: () => void;
  readonly onMeasureEnd?: () => void;
}

export interface ServerTimes {
  /** From the `parameters` of the 200 answers: queue_time_us, compute_time_us, batch_size. */
  readonly queueP50Ms: number;
  readonly queueP99Ms: number;
  readonly computeP50Ms: number;
  readonly computeP99Ms: number;
  readonly meanBatchSize: number;
}

export interface PacedLoadResult {
  readonly offeredRate: number;
  /** Requests due in the measured window. */
  readonly sent: number;
  readonly durationSeconds: number;
  /** Count of answers per HTTP status, for requests due in the window. */
  readonly statusCounts: Record<string, number>;
  /** Answers (any status) that arrived during the window, per second: what the server kept up with. */
  readonly answeredPerSecond: number;
  /** 2xx answers that arrived during the window, per second (the goodput). */
  readonly acceptedPerSecond: number;
  readonly accepted: LatencySummary & { readonly count: number };
  /** 503 answers (queue full). */
  readonly rejected: LatencySummary & { readonly count: number };
  readonly otherNon2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  /** How late requests left the client after their due time (timer granularity, backlog). */
  readonly sendLagP99Ms: number;
  readonly sendLagMaxMs: number;
  readonly connectionsOpened: number;
  /** Most connections open at once; at `maxConnections`, every one was waiting for an answer. */
  readonly connectionsPeak: number;
  /** Connection errors of the warm-up (not in `errors`). */
  readonly warmupErrors: number;
  /** Connections lost before the end, by reason (including those with no request on them). */
  readonly connectionsLost: Record<string, number>;
  readonly serverTimes?: ServerTimes;
}

interface Pending {
  readonly dueAt: number;
  readonly measured: boolean;
  sentAt?: number;
}

interface ParsedResponse {
  readonly status: number;
  readonly body: Buffer;
  readonly close: boolean;
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * Incremental parser of HTTP/1.1 responses on one socket: content-length or chunked bodies.
 * Returns undefined until a whole response is buffered; throws on anything it cannot read.
 */
class ResponseReader {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
  }

  get pendingBytes(): number {
    return this.buffer.length;
  }

  next(): ParsedResponse | undefined {
    const headerEnd = this.buffer.indexOf(HEADER_END);
    if (headerEnd < 0) return undefined;
    const head = this.buffer.toString('latin1', 0, headerEnd);
    const lines = head.split('\r\n');
    const statusMatch = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!statusMatch) throw new Error(`not an HTTP response: ${JSON.stringify(lines[0])}`);
    let contentLength: number | undefined;
    let chunked = false;
    let close = false;
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim().toLowerCase();
      if (name === 'content-length') contentLength = Number(value);
      else if (name === 'transfer-encoding') chunked = value.includes('chunked');
      else if (name === 'connection') close = value.includes('close');
    }
    const bodyStart = headerEnd + HEADER_END.length;
    let body: Buffer;
    let end: number;
    if (chunked) {
      const decoded = this.dechunk(bodyStart);
      if (!decoded) return undefined;
      ({ body, end } = decoded);
    } else {
      const length = contentLength ?? 0;
      if (!Number.isInteger(length) || length < 0) throw new Error(`bad content-length in ${JSON.stringify(head)}`);
      end = bodyStart + length;
      if (this.buffer.length < end) return undefined;
      body = this.buffer.subarray(bodyStart, end);
    }
    this.buffer = this.buffer.subarray(end);
    return { status: Number(statusMatch[1]), body, close };
  }

  private dechunk(start: number): { body: Buffer; end: number } | undefined {
    const parts: Buffer[] = [];
    let at = start;
    for (;;) {
      const lineEnd = this.buffer.indexOf('\r\n', at);
      if (lineEnd < 0) return undefined;
      const size = parseInt(this.buffer.toString('latin1', at, lineEnd), 16);
      if (!Number.isInteger(size) || size < 0) throw new Error('bad chunk size');
      const dataStart = lineEnd + 2;
      if (size === 0) {
        // No trailers are expected: the last chunk is followed by one empty line.
        if (this.buffer.length < dataStart + 2) return undefined;
        return { body: Buffer.concat(parts), end: dataStart + 2 };
      }
      if (this.buffer.length < dataStart + size + 2) return undefined;
      parts.push(this.buffer.subarray(dataStart, dataStart + size));
      at = dataStart + size + 2;
    }
  }
}

class Connection {
  readonly reader = new ResponseReader();
  current?: Pending;
  ready = false;
  dead = false;

  constructor(readonly socket: Socket) {}
}

/** Connections opened at once before the run. */
const CONNECT_CHUNK = 128;

const QUEUE_TIME = /"queue_time_us":(\d+)/;
const COMPUTE_TIME = /"compute_time_us":(\d+)/;
const BATCH_SIZE = /"batch_size":(\d+)/;

export async function runPacedLoad(options: PacedLoadOptions): Promise<PacedLoadResult> {
  const url = new URL(options.url);
  const host = url.hostname;
  const port = Number(url.port || 80);
  const body = Buffer.from(options.body);
  const request = Buffer.concat([
    Buffer.from(
      `POST ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\n\r\n`,
      'latin1',
    ),
    body,
  ]);
  const intervalMs = 1000 / options.ratePerSecond;
  const timeoutMs = options.timeoutSeconds * 1000;

  const connections = new Set<Connection>();
  const idle: Connection[] = [];
  const backlog: Pending[] = [];
  let connectionsOpened = 0;
  let connectionsPeak = 0;
  let connecting = 0;

  const statusCounts: Record<string, number> = {};
  const acceptedMs: number[] = [];
  const rejectedMs: number[] = [];
  const lagMs: number[] = [];
  const queueUs: number[] = [];
  const computeUs: number[] = [];
  let batchRowsSum = 0;
  let otherNon2xx = 0;
  let errors = 0;
  let timeouts = 0;
  let outstandingMeasured = 0;
  let sent = 0;
  let warmupErrors = 0;
  const connectionsLost: Record<string, number> = {};
  let answeredInWindow = 0;
  let acceptedInWindow = 0;
  let firstError: string | undefined;
  // Set when the schedule starts; answers arriving in [measureFrom, end) count as the window's throughput.
  let measureFrom = Infinity;
  let end = Infinity;

  function settle(pending: Pending, outcome: { response?: ParsedResponse; error?: string; timeout?: boolean }): void {
    const { response } = outcome;
    const now = performance.now();
    if (response && now >= measureFrom && now < end) {
      answeredInWindow++;
      if (response.status >= 200 && response.status < 300) acceptedInWindow++;
    }
    if (!pending.measured) {
      if (!response && !outcome.timeout) {
        warmupErrors++;
        firstError ??= outcome.error;
      }
      return;
    }
    outstandingMeasured--;
    if (!response) {
      if (outcome.timeout) timeouts++;
      else {
        errors++;
        firstError ??= outcome.error;
      }
      return;
    }
    const latency = now - pending.dueAt;
    statusCounts[response.status] = (statusCounts[response.status] ?? 0) + 1;
    if (response.status >= 200 && response.status < 300) {
      acceptedMs.push(latency);
      const text = response.body.toString('utf8');
      const queue = QUEUE_TIME.exec(text);
      const compute = COMPUTE_TIME.exec(text);
      const rows = BATCH_SIZE.exec(text);
      if (queue && compute && rows) {
        queueUs.push(Number(queue[1]));
        computeUs.push(Number(compute[1]));
        batchRowsSum += Number(rows[1]);
      }
    } else if (response.status === 503) {
      rejectedMs.push(latency);
    } else {
      otherNon2xx++;
      firstError ??= `HTTP ${response.status}: ${response.body.toString('utf8').slice(0, 200)}`;
    }
  }

  function send(connection: Connection, pending: Pending): void {
    connection.current = pending;
    pending.sentAt = performance.now();
    if (pending.measured) lagMs.push(pending.sentAt - pending.dueAt);
    connection.socket.write(request);
  }

  /** The connection is free: it takes the oldest waiting request, or goes idle. */
  function release(connection: Connection): void {
    connection.current = undefined;
    if (connection.dead) return;
    const waiting = backlog.shift();
    if (waiting) send(connection, waiting);
    else idle.push(connection);
  }

  function drop(connection: Connection, why: { error?: string; timeout?: boolean; closed?: boolean }): void {
    if (connection.dead) return;
    connection.dead = true;
    const reason = why.timeout ? 'timeout' : why.closed ? 'closed after a "connection: close" answer' : (why.error ?? 'unknown');
    connectionsLost[reason] = (connectionsLost[reason] ?? 0) + 1;
    if (!connection.ready) connecting--;
    connections.delete(connection);
    const at = idle.indexOf(connection);
    if (at >= 0) idle.splice(at, 1);
    connection.socket.destroy();
    const pending = connection.current;
    connection.current = undefined;
    if (pending) settle(pending, why);
    // Requests left waiting for a connection that will not come get a new one.
    if (backlog.length > connecting && connections.size < options.maxConnections) open();
  }

  function open(): Connection {
    const socket = connect({ host, port, noDelay: true });
    const connection = new Connection(socket);
    connections.add(connection);
    connectionsOpened++;
    connecting++;
    connectionsPeak = Math.max(connectionsPeak, connections.size);
    socket.on('connect', () => {
      connecting--;
      connection.ready = true;
      release(connection);
    });
    socket.on('data', (chunk: Buffer) => {
      connection.reader.push(chunk);
      let response: ParsedResponse | undefined;
      try {
        response = connection.reader.next();
      } catch (error) {
        drop(connection, { error: (error as Error).message });
        return;
      }
      if (!response) return;
      const pending = connection.current;
      if (!pending || connection.reader.pendingBytes > 0) {
        drop(connection, { error: 'the server sent bytes that answer no request' });
        return;
      }
      settle(pending, { response });
      if (response.close) {
        connection.current = undefined;
        drop(connection, { closed: true });
      } else {
        release(connection);
      }
    });
    socket.on('error', (error) => drop(connection, { error: error.message }));
    socket.on('close', () => drop(connection, { error: 'the server closed the connection' }));
    return connection;
  }

  function issue(dueAt: number, measured: boolean): void {
    const pending: Pending = { dueAt, measured };
    if (measured) {
      sent++;
      outstandingMeasured++;
    }
    const connection = idle.pop();
    if (connection) {
      send(connection, pending);
      return;
    }
    backlog.push(pending);
    // One new connection per waiting request, counting those already on their way.
    if (backlog.length > connecting && connections.size < options.maxConnections) open();
  }

  // Connections first, while the server is idle, so the schedule does not start with connects. In
  // chunks well under the server's listen backlog (Node's default is 511): a connection whose
  // handshake overflowed the accept queue looks open to the client but waits for the server's
  // SYN-ACK retries (1 s, 3 s, 7 s...), which would add seconds to the requests sent on it.
  const initial = Math.min(options.initialConnections, options.maxConnections);
  const connectDeadline = performance.now() + 10_000;
  while (connectionsOpened < initial && performance.now() < connectDeadline) {
    for (let i = Math.min(CONNECT_CHUNK, initial - connectionsOpened); i > 0; i--) open();
    while ([...connections].some((c) => !c.ready) && performance.now() < connectDeadline) await sleep(2);
  }
  if (connections.size === 0) throw new Error(`could not connect to ${options.url}: ${firstError ?? 'every connection failed'}`);

  const sweeper = setInterval(() => {
    const now = performance.now();
    for (const connection of connections) {
      if (connection.current?.sentAt !== undefined && now - connection.current.sentAt > timeoutMs) drop(connection, { timeout: true });
    }
  }, 250);

  const start = performance.now() + 10;
  measureFrom = start + options.warmupSeconds * 1000;
  end = measureFrom + options.durationSeconds * 1000;
  await new Promise<void>((resolve) => {
    let k = 0;
    let measuring = false;
    const tick = (): void => {
      const now = performance.now();
      if (!measuring && now >= measureFrom) {
        measuring = true;
        options.onMeasureStart?.();
      }
      for (let due = start + k * intervalMs; due <= now && due < end; due = start + ++k * intervalMs) issue(due, due >= measureFrom);
      const nextDue = start + k * intervalMs;
      if (nextDue >= end) {
        options.onMeasureEnd?.();
        resolve();
      } else setTimeout(tick, Math.max(0, nextDue - performance.now()));
    };
    setTimeout(tick, Math.max(0, start - performance.now()));
  });

  // The window's last requests get their answers (or time out) before the connections close.
  const drainDeadline = performance.now() + timeoutMs + 1000;
  while (outstandingMeasured > 0 && performance.now() < drainDeadline) await sleep(10);
  clearInterval(sweeper);
  for (const pending of backlog.splice(0)) settle(pending, { timeout: true });
  for (const connection of [...connections]) {
    const pending = connection.current;
    connection.current = undefined;
    if (pending) settle(pending, { timeout: true });
    connection.dead = true;
    connection.socket.destroy();
  }
  if (firstError !== undefined) process.stderr.write(`bench: paced load, first error: ${firstError}\n`);

  const lag = Float64Array.from(lagMs).sort();
  const accepted = acceptedMs.length;
  return {
    offeredRate: options.ratePerSecond,
    sent,
    durationSeconds: options.durationSeconds,
    statusCounts,
    answeredPerSecond: answeredInWindow / options.durationSeconds,
    acceptedPerSecond: acceptedInWindow / options.durationSeconds,
    accepted: { count: accepted, ...summarize(acceptedMs) },
    rejected: { count: rejectedMs.length, ...summarize(rejectedMs) },
    otherNon2xx,
    errors,
    timeouts,
    sendLagP99Ms: summarize(lag).p99Ms,
    sendLagMaxMs: lag.length > 0 ? lag[lag.length - 1]! : Number.NaN,
    connectionsOpened,
    connectionsPeak,
    warmupErrors,
    connectionsLost,
    serverTimes:
      queueUs.length > 0
        ? {
            queueP50Ms: summarize(queueUs).p50Ms / 1000,
            queueP99Ms: summarize(queueUs).p99Ms / 1000,
            computeP50Ms: summarize(computeUs).p50Ms / 1000,
            computeP99Ms: summarize(computeUs).p99Ms / 1000,
            meanBatchSize: batchRowsSum / queueUs.length,
          }
        : undefined,
  };
}
