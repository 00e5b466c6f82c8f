import { DomainError, ERROR_CODES, UNNAMED_ERROR, type DomainErrorCode, type ErrorCategory } from '../../domain/shared/domain-error.js';

/** The HTTP status of each error category (src/domain/shared/domain-error.ts). */
const HTTP_STATUS_OF: Record<ErrorCategory, number> = {
  INVALID_ARGUMENT: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  FAILED_PRECONDITION: 409,
  CONFLICT: 409,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  RATE_LIMITED: 429,
  PAYLOAD_TOO_LARGE: 413,
  // The request asked for more than the server gives: the request's fault, as Triton answers it.
  LIMIT_EXCEEDED: 400,
  // RFC 9110 §15.5.16: a content coding the server does not read is a 415 (Triton answers 501).
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNAVAILABLE: 503,
  DEADLINE_EXCEEDED: 504,
  // nginx's "client closed request": the client is gone, so only the access log sees it.
  CANCELLED: 499,
  UNSUPPORTED: 501,
  INTERNAL: 500,
};

/** The codes whose HTTP status is not their category's, because the wire (Triton's) says otherwise. */
const HTTP_STATUS_EXCEPTIONS: Partial<Record<DomainErrorCode, number>> = {
  // Triton answers a name registered twice with ALREADY_EXISTS, which its HTTP server sends as 400.
  'SHARED_MEMORY.REGION_EXISTS': 400,
  // draft-ietf-httpapi-idempotency-key-header: a key reused for another request is a 422.
  'JOBS.IDEMPOTENCY_KEY_REUSED': 422,
};

/** The HTTP status a domain error code answers with. */
export function httpStatusOf(code: DomainErrorCode): number {
  return HTTP_STATUS_EXCEPTIONS[code] ?? HTTP_STATUS_OF[ERROR_CODES[code].category];
}

/** The HTTP status of any error a handler throws: its code's, or an internal error's. */
export function httpStatusOfError(error: unknown): number {
  return error instanceof DomainError ? httpStatusOf(error.code) : HTTP_STATUS_OF[UNNAMED_ERROR.category];
}
