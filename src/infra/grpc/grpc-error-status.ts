import { status as GrpcStatus } from '@grpc/grpc-js';
import { DomainError, ERROR_CODES, UNNAMED_ERROR, type DomainErrorCode, type ErrorCategory } from '../../domain/shared/domain-error.js';

/** The gRPC status of each error category (src/domain/shared/domain-error.ts). */
const GRPC_STATUS_OF: Record<ErrorCategory, GrpcStatus> = {
  INVALID_ARGUMENT: GrpcStatus.INVALID_ARGUMENT,
  NOT_FOUND: GrpcStatus.NOT_FOUND,
  ALREADY_EXISTS: GrpcStatus.ALREADY_EXISTS,
  FAILED_PRECONDITION: GrpcStatus.FAILED_PRECONDITION,
  CONFLICT: GrpcStatus.ABORTED,
  UNAUTHENTICATED: GrpcStatus.UNAUTHENTICATED,
  PERMISSION_DENIED: GrpcStatus.PERMISSION_DENIED,
  // PROTOCOL.md: RESOURCE_EXHAUSTED for rate limits.
  RATE_LIMITED: GrpcStatus.RESOURCE_EXHAUSTED,
  // What grpc-js answers a message over its receive limit.
  PAYLOAD_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
  LIMIT_EXCEEDED: GrpcStatus.RESOURCE_EXHAUSTED,
  UNSUPPORTED_MEDIA_TYPE: GrpcStatus.INVALID_ARGUMENT,
  // Triton maps "exceeds maximum queue size" to UNAVAILABLE.
  UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  DEADLINE_EXCEEDED: GrpcStatus.DEADLINE_EXCEEDED,
  CANCELLED: GrpcStatus.CANCELLED,
  // Triton: client shared memory turned off and CUDA shared memory are UNSUPPORTED, gRPC's UNIMPLEMENTED.
  UNSUPPORTED: GrpcStatus.UNIMPLEMENTED,
  INTERNAL: GrpcStatus.INTERNAL,
};

/** The gRPC status a domain error code answers with. */
export function grpcStatusOf(code: DomainErrorCode): GrpcStatus {
  return GRPC_STATUS_OF[ERROR_CODES[code].category];
}

/** The gRPC status of any error a handler throws: its code's, or INTERNAL. */
export function grpcStatusOfError(error: unknown): GrpcStatus {
  return error instanceof DomainError ? grpcStatusOf(error.code) : GRPC_STATUS_OF[UNNAMED_ERROR.category];
}
