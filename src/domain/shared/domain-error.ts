/**
 * Every failure the domain can name, with a stable code, and what kind of failure each code is: one
 * table ({@link ERROR_CODES}), as Triton's `Status::Code` (core `src/status.h`) gives each error a
 * category that every frontend maps. Each transport maps a category to its status in its own adapter
 * (src/infra/http/http-error-status.ts, src/infra/grpc/grpc-error-status.ts); everything else that
 * sorts errors (the circuit breakers, the rollouts' figures, the adaptive in-flight limits, the
 * failure metric) reads the attributes here.
 */

/**
 * What kind of failure a code is, whatever the transport (the canonical codes of gRPC and Google's
 * API design, which Triton's own codes are a subset of).
 */
export type ErrorCategory =
  /** The request itself is wrong: a bad field, shape, datatype, name, configuration. */
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  /** The target is not in a state that allows the change (a version loading, a rollout ended). */
  | 'FAILED_PRECONDITION'
  /** A concurrent change won (compare-and-set on a revision): the change was not made. */
  | 'CONFLICT'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  /** A client over its quota: it may try again later. */
  | 'RATE_LIMITED'
  /** A request body over the size the server reads. */
  | 'PAYLOAD_TOO_LARGE'
  /** The request asks for more than a configured limit gives (an answer, a region). */
  | 'LIMIT_EXCEEDED'
  /** A body in an encoding the server does not read. */
  | 'UNSUPPORTED_MEDIA_TYPE'
  /** The server or the version cannot take the request now (not ready, busy): try again. */
  | 'UNAVAILABLE'
  | 'DEADLINE_EXCEEDED'
  | 'CANCELLED'
  /** A feature this server does not have. */
  | 'UNSUPPORTED'
  | 'INTERNAL';

/** Why an inference request failed, from a fixed set: the `reason` label of the failure metric (Triton's, extended). */
export const FAILURE_REASONS = ['rejected', 'timeout', 'cancelled', 'invalid', 'runtime', 'unavailable', 'not_found'] as const;
type FailureReason = (typeof FAILURE_REASONS)[number];

/** What a code says besides its message: its category and how the server counts it. */
export interface ErrorKind {
  readonly category: ErrorCategory;
  /**
   * The version that ran the request is to blame (its runtime failed, or it did not answer in
   * time): counted by its circuit breaker and by its rollout's SLO. A client's error never is.
   */
  readonly blamesVersion: boolean;
  /** The version is overloaded (its queue is full, or requests wait past their deadline): its adaptive in-flight limit shrinks. */
  readonly overload: boolean;
  /** Shed before any work to protect the server (a full queue, a reached in-flight limit): not a failure of the version. */
  readonly shed: boolean;
  /** The failure metric's `reason` when an inference request fails with it. */
  readonly failureReason: FailureReason;
}

type Attributes = Partial<Pick<ErrorKind, 'blamesVersion' | 'overload' | 'shed'>>;

function kind(category: ErrorCategory, failureReason: FailureReason, attributes: Attributes = {}): ErrorKind {
  return { category, failureReason, blamesVersion: false, overload: false, shed: false, ...attributes };
}

/** Every code, with its kind (attributes not named are false). */
export const ERROR_CODES = {
  'REGISTRY.MODEL_NOT_FOUND': kind('NOT_FOUND', 'not_found'),
  'REGISTRY.VERSION_NOT_FOUND': kind('NOT_FOUND', 'not_found'),
  'REGISTRY.VERSION_NOT_READY': kind('UNAVAILABLE', 'unavailable'),
  'REGISTRY.INVALID_CONFIG': kind('INVALID_ARGUMENT', 'invalid'),
  'REGISTRY.INVALID_TRANSITION': kind('FAILED_PRECONDITION', 'invalid'),
  'REGISTRY.STATE_CONFLICT': kind('CONFLICT', 'invalid'),
  'REGISTRY.INVALID_NAME': kind('INVALID_ARGUMENT', 'invalid'),
  // Triton answers a failed repository load with 400 / INVALID_ARGUMENT.
  'REGISTRY.LOAD_FAILED': kind('INVALID_ARGUMENT', 'invalid'),
  'REGISTRY.VERSION_EXISTS': kind('ALREADY_EXISTS', 'invalid'),
  // The change an operator asked for could not be saved (STATE_DIR full or read-only): not made, or undone.
  'REGISTRY.STATE_NOT_SAVED': kind('INTERNAL', 'invalid'),
  // A body of the admin API (/admin, /v2/repository) that is not JSON or does not match its schema.
  'ADMIN.INVALID_REQUEST': kind('INVALID_ARGUMENT', 'invalid'),
  'AUTH.UNAUTHENTICATED': kind('UNAUTHENTICATED', 'invalid'),
  // Known (a verified client certificate) but not allowed (ADMIN_CLIENT_NAMES).
  'AUTH.FORBIDDEN': kind('PERMISSION_DENIED', 'invalid'),
  // ADMIN_PORT is set: the admin API is not served on the public ports (HTTP_PORT, GRPC_PORT), whatever the credentials.
  'AUTH.ADMIN_PORT_ONLY': kind('PERMISSION_DENIED', 'invalid'),
  // A route other than the admin API's asked of ADMIN_PORT, which serves that API only.
  'SERVER.NOT_ON_ADMIN_PORT': kind('NOT_FOUND', 'not_found'),
  // A client over its quota, with Retry-After.
  'CLIENT.RATE_LIMITED': kind('RATE_LIMITED', 'invalid'),
  // A body past MAX_REQUEST_BYTES once decompressed.
  'CLIENT.BODY_TOO_LARGE': kind('PAYLOAD_TOO_LARGE', 'invalid'),
  'CLIENT.UNSUPPORTED_CONTENT_ENCODING': kind('UNSUPPORTED_MEDIA_TYPE', 'invalid'),
  'SERVER.NOT_READY': kind('UNAVAILABLE', 'unavailable'),
  // REDIS_URL's server cannot be reached: an admin change cannot be made (inference does not use it).
  'SERVER.STATE_STORE_UNAVAILABLE': kind('UNAVAILABLE', 'unavailable'),
  // The server holds as many request bytes (or connections) as it may: busy, try again.
  'SERVER.OVERLOADED': kind('UNAVAILABLE', 'invalid'),
  // Over MAX_REQUEST_BYTES, as announced or as read.
  'CLIENT.REQUEST_TOO_LARGE': kind('PAYLOAD_TOO_LARGE', 'invalid'),
  'INFERENCE.INVALID_REQUEST': kind('INVALID_ARGUMENT', 'invalid'),
  'INFERENCE.INVALID_INPUT': kind('INVALID_ARGUMENT', 'invalid'),
  'INFERENCE.INVALID_DATATYPE': kind('INVALID_ARGUMENT', 'invalid'),
  'INFERENCE.INVALID_SHAPE': kind('INVALID_ARGUMENT', 'invalid'),
  'INFERENCE.INVALID_DATA': kind('INVALID_ARGUMENT', 'invalid'),
  'INFERENCE.INVALID_OUTPUT': kind('INVALID_ARGUMENT', 'invalid'),
  'INFERENCE.RUNTIME_ERROR': kind('INTERNAL', 'runtime', { blamesVersion: true }),
  // Triton maps "exceeds maximum queue size" to UNAVAILABLE: the server is busy, try again.
  'INFERENCE.QUEUE_FULL': kind('UNAVAILABLE', 'rejected', { overload: true, shed: true }),
  'INFERENCE.DEADLINE_EXCEEDED': kind('DEADLINE_EXCEEDED', 'timeout', { blamesVersion: true, overload: true }),
  // The client is gone, so only the access log sees its answer.
  'INFERENCE.CANCELLED': kind('CANCELLED', 'cancelled'),
  // A version failing too often is not run for a while: busy, try again (after Retry-After).
  'INFERENCE.CIRCUIT_OPEN': kind('UNAVAILABLE', 'unavailable'),
  // A version holding as many requests as its limit allows: load shed like a full queue.
  'INFERENCE.CONCURRENCY_LIMITED': kind('UNAVAILABLE', 'rejected', { shed: true }),
  // An answer larger than MAX_RESPONSE_BYTES: the request asked for more than the server gives.
  'INFERENCE.RESPONSE_TOO_LARGE': kind('LIMIT_EXCEEDED', 'invalid'),
  // Client shared memory turned off (--allow-client-shm in Triton) and CUDA shared memory.
  'SHARED_MEMORY.UNSUPPORTED': kind('UNSUPPORTED', 'invalid'),
  'SHARED_MEMORY.REGION_NOT_FOUND': kind('NOT_FOUND', 'invalid'),
  'SHARED_MEMORY.REGION_EXISTS': kind('ALREADY_EXISTS', 'invalid'),
  'SHARED_MEMORY.INVALID_REGION': kind('INVALID_ARGUMENT', 'invalid'),
  'SHARED_MEMORY.LIMIT_EXCEEDED': kind('LIMIT_EXCEEDED', 'invalid'),
  'ROLLOUT.INVALID_SPEC': kind('INVALID_ARGUMENT', 'invalid'),
  'ROLLOUT.VERSION_NOT_READY': kind('FAILED_PRECONDITION', 'invalid'),
  'ROLLOUT.NOT_FOUND': kind('NOT_FOUND', 'invalid'),
  'ROLLOUT.INVALID_TRANSITION': kind('FAILED_PRECONDITION', 'invalid'),
  // A generation whose prompt (with max_tokens) passes max_model_len or the whole KV cache: it could never run.
  'GENERATION.TOO_LONG': kind('INVALID_ARGUMENT', 'invalid'),
  // Async inference jobs (README "Async inference jobs"): unknown, or past JOB_RESULT_TTL_MS.
  'JOBS.NOT_FOUND': kind('NOT_FOUND', 'not_found'),
  // JOB_MAX_PENDING jobs wait already: busy, try again (after Retry-After); no version's fault.
  'JOBS.QUEUE_FULL': kind('UNAVAILABLE', 'unavailable'),
  'JOBS.NOT_CANCELLABLE': kind('FAILED_PRECONDITION', 'invalid'),
  'JOBS.INVALID_TRANSITION': kind('FAILED_PRECONDITION', 'invalid'),
  'JOBS.IDEMPOTENCY_KEY_REUSED': kind('FAILED_PRECONDITION', 'invalid'),
  'JOBS.INVALID_IDEMPOTENCY_KEY': kind('INVALID_ARGUMENT', 'invalid'),
  // REDIS_URL's server cannot be reached: the job was not submitted (or cannot be read now).
  'JOBS.STORE_UNAVAILABLE': kind('UNAVAILABLE', 'unavailable'),
} as const satisfies Record<string, ErrorKind>;

export type DomainErrorCode = keyof typeof ERROR_CODES;

/** What a client may act on besides the message. */
export interface DomainErrorDetails {
  /** When to try again (rejections for load, not for the request itself). */
  readonly retryAfterSeconds?: number;
}

export class DomainError extends Error {
  constructor(
    readonly code: DomainErrorCode,
    message: string,
    readonly details: DomainErrorDetails = {},
  ) {
    super(message);
    this.name = 'DomainError';
  }

  get kind(): ErrorKind {
    return ERROR_CODES[this.code];
  }
}

/** An error no code names (a bug, a runtime's own exception): internal, and the version's fault. */
export const UNNAMED_ERROR: ErrorKind = kind('INTERNAL', 'runtime', { blamesVersion: true });

/** The kind of any error: its code's, or {@link UNNAMED_ERROR}. */
export function errorKindOf(error: unknown): ErrorKind {
  return error instanceof DomainError ? ERROR_CODES[error.code] : UNNAMED_ERROR;
}

/**
 * The error to answer when a change was not made because its save failed (`undone`: what the
 * server did about it, so that the answer says what serves); any other error as it is.
 */
export function notMade(change: string, error: unknown, undone: string): unknown {
  if (!(error instanceof DomainError) || error.code !== 'REGISTRY.STATE_NOT_SAVED') return error;
  return new DomainError('REGISTRY.STATE_NOT_SAVED', `${change} was not made: ${error.message}; ${undone}`);
}
