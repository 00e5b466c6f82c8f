import { z } from 'zod';
import { parseFaultPlans } from '../onnx/fault-plan.js';

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
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Largest request accepted, in bytes: an HTTP body or a received gRPC message (Triton's HTTP default is 64 MiB). */
  MAX_REQUEST_BYTES: z.coerce.number().int().min(1024).max(2 ** 31 - 1).default(64 * 1024 * 1024),
  /** Interval of the gRPC server's keepalive pings on a connection (ms); a peer that misses one is dropped. */
  GRPC_KEEPALIVE_TIME_MS: z.coerce.number().int().min(1000).default(60_000),
  /** How long a keepalive ping may go unanswered before the connection is closed (ms). */
  GRPC_KEEPALIVE_TIMEOUT_MS: z.coerce.number().int().min(100).default(20_000),
  /** Cap on every request's timeout (ms): a client may ask for less, and no request waits or runs longer. */
  MAX_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(1).default(60_000),
  /** The longest a model version's warm-up may take (ms); past it the run is stopped and the load fails. */
  MODEL_WARMUP_TIMEOUT_MS: z.coerce.number().int().min(1).default(60_000),
  /** Where the registry keeps its state across restarts (loaded versions, default versions, overrides). */
  STATE_DIR: z.string().min(1).default('./state'),
  /** Bearer token of the admin API; unset: one is generated at start into STATE_DIR/admin-token (mode 0600). */
  ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
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
  /** Triton's --strict-readiness: ready only when every model is READY; false: ready once loading has finished. */
  STRICT_READINESS: bool(true),
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

/** Reads and checks the environment; the error names every bad variable, its value and what it must be. */
export function loadAppConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== ''));
  const parsed = environmentSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0]);
      return `${name}=${JSON.stringify(env[name])}: ${issue.message}`;
    });
    throw new InvalidConfigurationError(`invalid configuration: ${problems.join('; ')}`);
  }
  return new AppConfig(parsed.data);
}
