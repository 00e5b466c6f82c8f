import { readdir, readFile, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';
import { parseFaultPlans } from './fault-plan.js';
import { schemaErrorMessage } from '../validation/schema-error-message.js';

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
const bool = (fallback: boolean) =>
  z.enum(['true', 'false', '1', '0']).default(fallback ? 'true' : 'false').transform((v) => v === 'true' || v === '1');

/** Every environment variable the server reads, its default and its check (documented in the README). */
const environmentSchema = z.object({
  MODEL_REPOSITORY: z.string().min(1).default('./models'),
  HOST: z.string().min(1).default('0.0.0.0'),
  HTTP_PORT: port(8000),
  GRPC_PORT: port(8001),
  METRICS_PORT: port(8002),
  /**
   * Threads that accept HTTP connections (on HTTP_PORT, with reusePort), read, decode and encode
   * infer requests, beside the main thread, which owns the schedulers and state. 0: the main thread
   * serves every connection itself. Default: the cores left beside the main thread and one for the
   * model instances, at most 8.
   */
  INGRESS_THREADS: z.coerce.number().int().min(0).max(64).default(() => Math.max(0, Math.min(8, availableParallelism() - 2))),
  /** The admin API's own port (README "Running several replicas"); unset: the admin API is served on HTTP_PORT, as the rest. */
  ADMIN_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Largest request accepted, in bytes: an HTTP body or a received gRPC message (Triton's HTTP default is 64 MiB). */
  MAX_REQUEST_BYTES: z.coerce.number().int().min(1024).max(2 ** 31 - 1).default(64 * 1024 * 1024),
  /** Largest answer one request may produce, in bytes: its outputs together (onnxruntime keeps what a run allocated). */
  MAX_RESPONSE_BYTES: z.coerce.number().int().min(1024).max(2 ** 31 - 1).default(64 * 1024 * 1024),
  /** Most threads one model version may compute with (instances × intra-op threads); 0: twice the CPU quota. */
  MAX_MODEL_THREADS: z.coerce.number().int().min(0).max(4096).default(0),
  /** Interval of the gRPC server's keepalive pings on a connection (ms); a peer that misses one is dropped. */
  GRPC_KEEPALIVE_TIME_MS: z.coerce.number().int().min(1000).default(60_000),
  /** How long a keepalive ping may go unanswered before the connection is closed (ms). */
  GRPC_KEEPALIVE_TIMEOUT_MS: z.coerce.number().int().min(100).default(20_000),
  /** Cap on every request's timeout (ms): a client may ask for less, and no request waits or runs longer. */
  MAX_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(1).default(60_000),
  /** Generative models (backend onnx_generative), unless their config's parameters say otherwise: sequences in the running batch at most. */
  GENERATION_MAX_NUM_SEQS: z.coerce.number().int().min(1).max(4096).default(32),
  /** The KV cache one generative version's running sequences may hold, in bytes (admission reserves each sequence's most). */
  GENERATION_KV_CACHE_BYTES: z.coerce.number().int().min(1).default(256 * 1024 * 1024),
  /** Prompt tokens fed in one step at most (prefill chunking); 0 feeds whole prompts. */
  GENERATION_MAX_PREFILL_TOKENS_PER_STEP: z.coerce.number().int().min(0).default(256),
  /** Tokens a client may leave unread before its sequence is paused (per-token flow control). */
  GENERATION_STREAM_BUFFER_TOKENS: z.coerce.number().int().min(1).max(1_000_000).default(64),
  /** Generative models: the next step is sent before the running one answers (two in flight), so the instance never waits for the scheduler (a model's `parameters.overlap_steps` overrides it). */
  GENERATION_OVERLAP_STEPS: bool(true),
  /** The longest one generation may take, queued and running (ms); a client's `timeout` may lower it. */
  GENERATION_MAX_DURATION_MS: z.coerce.number().int().min(1).default(600_000),
  /** The longest a model version's warm-up may take (ms); past it the run is stopped and the load fails. */
  MODEL_WARMUP_TIMEOUT_MS: z.coerce.number().int().min(1).default(60_000),
  /** Where the registry keeps its state across restarts (loaded versions, default versions, overrides). */
  STATE_DIR: z.string().min(1).default('./state'),
  /** Bearer token of the admin API; unset: one is generated at start into STATE_DIR/admin-token (mode 0600). */
  ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** A file holding the admin API's bearer token (a mounted Kubernetes Secret), read at start; instead of ADMIN_TOKEN. */
  ADMIN_TOKEN_FILE: z.string().min(1).optional(),
  // ---- Replicas (README "Running several replicas") ----
  /** The Redis that replicas share their state through (redis:// or rediss://); unset: one server, state in STATE_DIR. */
  REDIS_URL: z
    .string()
    .refine((text) => /^rediss?:\/\/[^\s]+$/.test(text), 'must be a redis:// or rediss:// URL')
    .optional(),
  /** Prefix of every Redis key and channel of this deployment, so that several can share one Redis. */
  REDIS_KEY_PREFIX: z.string().min(1).max(128).default('onnx-serving:'),
  /** How long a replica's lock on a model (or a rollout) lives without renewal (ms): a replica that dies holding it blocks the others at most this long. */
  REDIS_LOCK_TTL_MS: z.coerce.number().int().min(1000).default(10_000),
  // ---- TLS and mutual TLS (README "Security"); the files are read and checked at start by src/infra/tls ----
  /** PEM certificate (chain) of the HTTP, gRPC and metrics ports; unset: they speak plaintext. Triton's --grpc-server-cert. */
  TLS_CERT_FILE: z.string().min(1).optional(),
  /** The PEM private key (unencrypted) of TLS_CERT_FILE. Triton's --grpc-server-key. */
  TLS_KEY_FILE: z.string().min(1).optional(),
  /** PEM CA certificate(s) that client certificates must chain to. Triton's --grpc-root-cert. */
  TLS_CA_FILE: z.string().min(1).optional(),
  /** Client certificates: none (not asked for), optional (asked for; only a verified one is an identity), required (Triton's --grpc-use-ssl-mutual). */
  TLS_CLIENT_AUTH: z.enum(['none', 'optional', 'required']).default('none'),
  /** How often the certificate, key and CA files are re-read (ms): changed files are served from the next connection on. */
  TLS_RELOAD_INTERVAL_MS: z.coerce.number().int().min(100).default(10_000),
  /** What the admin API needs: the bearer token, a verified client certificate, or both. */
  ADMIN_AUTH: z.enum(['token', 'client-cert', 'both']).default('token'),
  /** Comma-separated names of the client certificates the admin API accepts (subject CN or a subjectAltName); unset: any the CA verifies. */
  ADMIN_CLIENT_NAMES: z
    .string()
    .transform((text) => text.split(',').map((name) => name.trim()).filter((name) => name !== ''))
    .pipe(z.array(z.string()).min(1, 'must name at least one certificate'))
    .optional(),
  /** On SIGTERM: how long the server goes on serving, reporting itself not ready, before it stops accepting (ms). */
  SHUTDOWN_DRAIN_DELAY_MS: z.coerce.number().int().min(0).default(5000),
  /** On SIGTERM: the longest the whole shutdown may take (ms); past it the process exits with code 1. */
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(100).default(30_000),
  /** A model version's circuit breaker opens when this share of its requests fails on the server side (runtime errors, timeouts)... */
  BREAKER_ERROR_RATE: z.coerce.number().gt(0).max(1).default(0.5),
  /** ...over the last BREAKER_WINDOW_MS, with at least BREAKER_MIN_REQUESTS requests in it. */
  BREAKER_MIN_REQUESTS: z.coerce.number().int().min(1).default(20),
  BREAKER_WINDOW_MS: z.coerce.number().int().min(100).default(10_000),
  /** How long an open breaker refuses before it lets one trial request through (half-open). */
  BREAKER_OPEN_MS: z.coerce.number().int().min(10).default(5000),
  /** Per-client rate limit: tokens added to each client's bucket per second; 0 turns throttling off. */
  THROTTLE_RATE: z.coerce.number().min(0).default(0),
  /** The bucket's size: how many requests a client may send at once after being idle; 0 means THROTTLE_RATE (at least 1). */
  THROTTLE_BURST: z.coerce.number().int().min(0).default(0),
  /** The request header (HTTP) or metadata key (gRPC) naming the client, e.g. x-api-key; without it (or when absent) the source address does. */
  THROTTLE_CLIENT_HEADER: z.string().regex(/^[a-z0-9-]+$/, 'must be a lower-case header name').optional(),
  /** Default cap on the requests a model version holds at once (queued and running); 0 is no cap. A model's config may set its own. */
  MAX_INFLIGHT_REQUESTS: z.coerce.number().int().min(0).default(0),
  /** Default for every model: an adaptive in-flight limit (gradient) that sheds load when latency rises above its baseline. */
  ADAPTIVE_CONCURRENCY: bool(false),
  /** Slow clients: the longest an HTTP client may take to send its request headers (ms)... */
  HTTP_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
  /** ...and its whole request, body included (ms); past either, it gets 408 and its connection is closed. */
  HTTP_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).default(60_000),
  /** How deep a JSON request body may nest (arrays and objects); deeper is refused with 400 before it is parsed. */
  MAX_JSON_DEPTH: z.coerce.number().int().min(2).max(1000).default(64),
  /** Tests only: faults injected into model runs, a JSON object by "model" or "model/version" (see the README). */
  FAULT_INJECTION: z
    .string()
    .optional()
    .superRefine((text, context) => {
      if (text === undefined) return;
      try {
        parseFaultPlans(text);
      } catch (error) {
        context.addIssue({ code: 'custom', message: (error as Error).message });
      }
    }),
  /** Triton's --allow-metrics: false serves no /metrics and counts nothing. */
  ALLOW_METRICS: bool(true),
  /** How often progressive rollouts are judged on their figures (ms). */
  ROLLOUT_EVALUATION_INTERVAL_MS: z.coerce.number().int().min(10).default(1000),
  /** Triton's --allow-client-shm: whether clients may register shared memory regions and name them in requests. */
  ALLOW_CLIENT_SHM: bool(false),
  /** How many shared memory regions may be registered at once (each holds a file descriptor). */
  SHARED_MEMORY_MAX_REGIONS: z.coerce.number().int().min(1).max(100_000).default(128),
  /** How many bytes the registered shared memory regions may span together. */
  SHARED_MEMORY_MAX_BYTES: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(16 * 1024 ** 3),
  /** Triton's --strict-readiness: ready only when every model is READY; false: ready once loading has finished. */
  STRICT_READINESS: bool(true),
  // ---- Hardening: global bounds on what clients may hold (README "Security") ----
  /** Open HTTP connections at most (serving port); past it new ones are closed at once. 0: derived from the open-file limit. */
  HTTP_MAX_CONNECTIONS: z.coerce.number().int().min(0).default(0),
  /** Open gRPC connections at most; past it new ones are closed at once. 0: derived from the open-file limit. */
  GRPC_MAX_CONNECTIONS: z.coerce.number().int().min(0).default(0),
  /** With ADMIN_PORT: open connections to the admin port at most (operators and deploy tools need a few). */
  ADMIN_MAX_CONNECTIONS: z.coerce.number().int().min(1).default(64),
  /** Open connections to the metrics port at most (Prometheus needs a few). */
  METRICS_MAX_CONNECTIONS: z.coerce.number().int().min(1).default(32),
  /** An idle HTTP keep-alive connection (serving and metrics ports) is closed after this long (ms). */
  HTTP_KEEP_ALIVE_TIMEOUT_MS: z.coerce.number().int().min(100).default(5000),
  /** An idle gRPC connection (no call for this long) is closed, after a GOAWAY (ms). */
  GRPC_MAX_CONNECTION_IDLE_MS: z.coerce.number().int().min(1000).default(300_000),
  /** Bytes of HTTP request bodies held at once across every connection; past it, 503 with Retry-After. */
  MAX_REQUEST_BYTES_IN_FLIGHT: z.coerce.number().int().min(1024).default(512 * 1024 * 1024),
  /** Bytes one ModelStreamInfer stream may hold (answers its client has not read, requests in flight); reading pauses past it. */
  GRPC_STREAM_MAX_BUFFERED_BYTES: z.coerce.number().int().min(1024).default(8 * 1024 * 1024),
  /** Rate limit per source address whatever THROTTLE_CLIENT_HEADER says (requests per second); 0: off. */
  THROTTLE_ADDRESS_RATE: z.coerce.number().min(0).default(0),
  /** Its bucket's size; 0 means THROTTLE_ADDRESS_RATE (at least 1). */
  THROTTLE_ADDRESS_BURST: z.coerce.number().int().min(0).default(0),
  // ---- Rate limits across replicas (README "Shared rate limits"), with REDIS_URL ----
  /** With REDIS_URL: how many tokens a replica leases at once from a client's shared bucket; 0: a tenth of the burst (at least 1). */
  THROTTLE_LEASE_SIZE: z.coerce.number().int().min(0).default(0),
  /** With REDIS_URL: how long leased tokens stay usable on the replica that leased them (ms); unused ones then lapse. */
  THROTTLE_LEASE_MS: z.coerce.number().int().min(10).max(60_000).default(1000),
  // ---- Async inference jobs (README "Async inference jobs") ----
  /** How long a finished job (its outputs or error) is kept after it finished (ms); then GET answers 404. */
  JOB_RESULT_TTL_MS: z.coerce.number().int().min(1000).default(3_600_000),
  /** Jobs waiting to run at most (the whole cluster's with Redis); a submission past it is refused with 503 and Retry-After. */
  JOB_MAX_PENDING: z.coerce.number().int().min(1).default(1000),
  /** Jobs this node runs at once (each one a request at the scheduler's background level); 0: none (a replica that only takes and answers for jobs, with Redis). */
  JOB_CONCURRENCY: z.coerce.number().int().min(0).max(1024).default(4),
  /** Runs a job may have in all: the first and its retries after runtime failures (or lost replicas). */
  JOB_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(3),
  /** Delay before a job's first retry (ms); each next retry waits twice as long. */
  JOB_RETRY_BACKOFF_MS: z.coerce.number().int().min(0).default(1000),
  /** With Redis (BullMQ's lockDuration): a replica that stops renewing a running job's lock for this long has lost it (ms). */
  JOB_LOCK_DURATION_MS: z.coerce.number().int().min(100).default(30_000),
  /** With Redis (BullMQ's stalledInterval): how often jobs whose replica died are looked for and queued again (ms). */
  JOB_STALLED_INTERVAL_MS: z.coerce.number().int().min(100).default(30_000),
  /** With Redis: the prefix of the jobs' keys (several deployments on one Redis). */
  JOB_QUEUE_PREFIX: z.string().regex(/^[\w.-]{1,64}$/, 'must be 1 to 64 letters, digits, ".", "-" or "_"').default('onnx-serving'),
});

type Environment = z.infer<typeof environmentSchema>;

/** The validated configuration; the class doubles as its Nest injection token. */
export interface AppConfig extends Readonly<Environment> {}
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class AppConfig {
  constructor(values: Environment) {
    Object.assign(this, values);
  }
}

export class InvalidConfigurationError extends Error {}

/** Variables whose value is never shown: a configuration error writes `***` in its place (a REDIS_URL may carry a password). */
const SECRET_NAME = /TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_KEY|PRIVATE_KEY|REDIS_URL/;

/** `NAME="value"` as configuration errors write it; a secret's value as `***`. */
function shown(name: string, value: string | number | undefined): string {
  return `${name}=${SECRET_NAME.test(name) ? '***' : JSON.stringify(value)}`;
}

function invalid(problems: readonly string[]): InvalidConfigurationError {
  return new InvalidConfigurationError(`invalid configuration: ${problems.join('; ')}`);
}

/** Reads and checks the environment; the error names every bad variable, its value and what it must be. */
export function loadAppConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== ''));
  const parsed = environmentSchema.safeParse(present);
  if (!parsed.success) {
    throw invalid([schemaErrorMessage(parsed.error, { every: true, at: (issue) => shown(String(issue.path[0]), env[String(issue.path[0])]) })]);
  }
  // The admin API's client certificate is checked on the main thread's own TLS connection, which ingress threads would terminate.
  if (parsed.data.ADMIN_AUTH === 'client-cert' && present.INGRESS_THREADS === undefined) parsed.data.INGRESS_THREADS = 0;
  const clashes = [...portClashes(parsed.data), ...secretClashes(parsed.data)];
  if (clashes.length > 0) throw invalid(clashes);
  return new AppConfig(parsed.data);
}

/**
 * Replicas share one admin token: with REDIS_URL, it comes from ADMIN_TOKEN or ADMIN_TOKEN_FILE
 * (a mounted Secret), never one generated by each replica (unless the admin API takes no token).
 */
function secretClashes(values: Environment): string[] {
  const problems: string[] = [];
  if (values.ADMIN_AUTH === 'client-cert' && values.INGRESS_THREADS > 0) problems.push('INGRESS_THREADS: must be 0 with ADMIN_AUTH=client-cert (the admin client certificate is checked on the main thread\'s own TLS connections)');
  if (values.ADMIN_TOKEN !== undefined && values.ADMIN_TOKEN_FILE !== undefined) problems.push('ADMIN_TOKEN_FILE: set ADMIN_TOKEN or ADMIN_TOKEN_FILE, not both');
  if (values.REDIS_URL !== undefined && values.ADMIN_AUTH !== 'client-cert' && values.ADMIN_TOKEN === undefined && values.ADMIN_TOKEN_FILE === undefined) {
    problems.push('ADMIN_TOKEN: must be set (or ADMIN_TOKEN_FILE, e.g. a mounted Secret) when REDIS_URL is set: replicas share one admin token, and none is generated per replica');
  }
  return problems;
}

export type PortVariable = 'HTTP_PORT' | 'GRPC_PORT' | 'METRICS_PORT' | 'ADMIN_PORT';

/** Two servers given the same port (0, any free port, never clashes; METRICS_PORT only while metrics are served, ADMIN_PORT only when set). */
function portClashes(values: Environment): string[] {
  const ports: PortVariable[] = ['HTTP_PORT', 'GRPC_PORT', ...(values.ALLOW_METRICS ? ['METRICS_PORT' as const] : []), ...(values.ADMIN_PORT !== undefined ? ['ADMIN_PORT' as const] : [])];
  return ports.flatMap((name, i) => {
    const earlier = ports.slice(0, i).find((other) => values[other] === values[name] && values[name] !== 0);
    return earlier ? [`${shown(name, values[name])}: the same port as ${earlier}`] : [];
  });
}

/**
 * Checks, at start, that MODEL_REPOSITORY is a directory the server can list: a repository that
 * does not exist or cannot be read is a configuration error (exit code 2), not a server that
 * answers ready with no models.
 */
export async function checkModelRepository(config: AppConfig): Promise<void> {
  const where = resolve(config.MODEL_REPOSITORY);
  const problem = await stat(where).then(
    async (found) => {
      if (!found.isDirectory()) return `is not a directory (${where})`;
      return readdir(where).then(
        () => undefined,
        (error: NodeJS.ErrnoException) => `cannot be read (${where}): ${reasonOf(error)}`,
      );
    },
    (error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? `does not exist (${where})` : `cannot be read (${where}): ${reasonOf(error)}`),
  );
  if (problem) throw invalid([`${shown('MODEL_REPOSITORY', config.MODEL_REPOSITORY)}: ${problem}`]);
}

/**
 * With ADMIN_TOKEN_FILE, the configuration with the token that file holds (surrounding whitespace
 * trimmed: a Secret's file may end with a newline). A file that cannot be read, or holds a token
 * shorter than ADMIN_TOKEN's minimum, is a configuration error naming the variable (exit code 2).
 */
export async function withAdminTokenFile(config: AppConfig): Promise<AppConfig> {
  if (config.ADMIN_TOKEN_FILE === undefined) return config;
  const where = resolve(config.ADMIN_TOKEN_FILE);
  const token = await readFile(where, 'utf8').then(
    (text) => text.trim(),
    (error: NodeJS.ErrnoException) => {
      throw invalid([`${shown('ADMIN_TOKEN_FILE', config.ADMIN_TOKEN_FILE)}: cannot be read (${where}): ${error.code === 'ENOENT' ? 'it does not exist' : reasonOf(error)}`]);
    },
  );
  if (token.length < 16) throw invalid([`${shown('ADMIN_TOKEN_FILE', config.ADMIN_TOKEN_FILE)}: the token it holds must be at least 16 characters`]);
  return new AppConfig({ ...config, ADMIN_TOKEN: token });
}

function reasonOf(error: NodeJS.ErrnoException): string {
  if (error.code === 'EACCES' || error.code === 'EPERM') return `permission denied (${error.code})`;
  if (error.code === 'ENOTDIR') return `a part of the path is not a directory (${error.code})`;
  return error.message;
}

/**
 * The socket errors that say a server cannot have the address it was configured with, each with
 * the way grpc-js words it (it gives no error code, only a message: naming the socket error, or
 * saying that HOST did not resolve).
 */
const BIND_ERRORS = [
  { code: 'EADDRINUSE', words: /\bEADDRINUSE\b/, says: (address: string) => `${address} is already in use (another process listens there)` },
  { code: 'EACCES', words: /\bEACCES\b/, says: (address: string) => `binding ${address} is not permitted (a port below 1024 needs privileges)` },
  { code: 'EADDRNOTAVAIL', words: /\bEADDRNOTAVAIL\b/, says: (address: string) => `${address} cannot be bound: HOST is not an address of this machine` },
  { code: 'ENOTFOUND', words: /\bENOTFOUND\b|Name resolution failed/, says: (address: string) => `${address} cannot be bound: HOST does not resolve` },
] as const;

/**
 * What a server that failed to bind its port should throw: a configuration error naming the
 * variable, the address and why (exit code 2, like a bad value), for an error that says the
 * address cannot be had; any other error (a configuration error already) as it is.
 */
export function bindFailure(variable: PortVariable, config: AppConfig, error: unknown): unknown {
  if (!(error instanceof Error) || error instanceof InvalidConfigurationError) return error;
  const given = (error as NodeJS.ErrnoException).code;
  const known = BIND_ERRORS.find((e) => e.code === given) ?? BIND_ERRORS.find((e) => e.words.test(error.message));
  if (!known) return error;
  const host = config.HOST.includes(':') ? `[${config.HOST}]` : config.HOST;
  return invalid([`${shown(variable, config[variable])}: ${known.says(`${host}:${config[variable]}`)} (${known.code})`]);
}
