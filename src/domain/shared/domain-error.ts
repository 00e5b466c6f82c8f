/**
 * Every failure the domain can name, with a stable code. Transports map codes to statuses in one
 * table (src/infra/transport/domain-error-status.ts); nothing else decides a status.
 */
export type DomainErrorCode =
  | 'REGISTRY.MODEL_NOT_FOUND'
  | 'REGISTRY.VERSION_NOT_FOUND'
  | 'REGISTRY.VERSION_NOT_READY'
  | 'REGISTRY.INVALID_CONFIG'
  | 'REGISTRY.INVALID_TRANSITION'
  | 'REGISTRY.STATE_CONFLICT'
  | 'REGISTRY.INVALID_NAME'
  | 'REGISTRY.LOAD_FAILED'
  | 'REGISTRY.VERSION_EXISTS'
  | 'REGISTRY.STATE_NOT_SAVED'
  | 'AUTH.UNAUTHENTICATED'
  | 'AUTH.FORBIDDEN'
  | 'CLIENT.RATE_LIMITED'
  | 'CLIENT.BODY_TOO_LARGE'
  | 'CLIENT.UNSUPPORTED_CONTENT_ENCODING'
  | 'SERVER.NOT_READY'
  | 'SERVER.OVERLOADED'
  | 'CLIENT.REQUEST_TOO_LARGE'
  | 'INFERENCE.INVALID_REQUEST'
  | 'INFERENCE.INVALID_INPUT'
  | 'INFERENCE.INVALID_DATATYPE'
  | 'INFERENCE.INVALID_SHAPE'
  | 'INFERENCE.INVALID_DATA'
  | 'INFERENCE.INVALID_OUTPUT'
  | 'INFERENCE.RUNTIME_ERROR'
  | 'INFERENCE.QUEUE_FULL'
  | 'INFERENCE.DEADLINE_EXCEEDED'
  | 'INFERENCE.CANCELLED'
  | 'INFERENCE.CIRCUIT_OPEN'
  | 'INFERENCE.CONCURRENCY_LIMITED'
  | 'INFERENCE.RESPONSE_TOO_LARGE'
  | 'GENERATION.TOO_LONG'
  | 'SHARED_MEMORY.UNSUPPORTED'
  | 'SHARED_MEMORY.REGION_NOT_FOUND'
  | 'SHARED_MEMORY.REGION_EXISTS'
  | 'SHARED_MEMORY.INVALID_REGION'
  | 'SHARED_MEMORY.LIMIT_EXCEEDED'
  | 'ROLLOUT.INVALID_SPEC'
  | 'ROLLOUT.VERSION_NOT_READY'
  | 'ROLLOUT.NOT_FOUND'
  | 'ROLLOUT.INVALID_TRANSITION';

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
}
