import { status as GrpcStatus } from '@grpc/grpc-js';
import type { DomainErrorCode } from '../../domain/shared/domain-error.js';

/** How each domain error leaves the server, per transport: the one table, used by the one error filter. */
export const STATUS_OF: Record<DomainErrorCode, { readonly http: number; readonly grpc: GrpcStatus }> = {
  'REGISTRY.MODEL_NOT_FOUND': { http: 404, grpc: GrpcStatus.NOT_FOUND },
  'REGISTRY.VERSION_NOT_FOUND': { http: 404, grpc: GrpcStatus.NOT_FOUND },
  'REGISTRY.VERSION_NOT_READY': { http: 503, grpc: GrpcStatus.UNAVAILABLE },
  'REGISTRY.INVALID_CONFIG': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  'REGISTRY.INVALID_TRANSITION': { http: 409, grpc: GrpcStatus.FAILED_PRECONDITION },
  'REGISTRY.STATE_CONFLICT': { http: 409, grpc: GrpcStatus.ABORTED },
  'REGISTRY.INVALID_NAME': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  // Triton answers a failed repository load with 400 / INVALID_ARGUMENT.
  'REGISTRY.LOAD_FAILED': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  'REGISTRY.VERSION_EXISTS': { http: 409, grpc: GrpcStatus.ALREADY_EXISTS },
  // The change an operator asked for could not be saved (STATE_DIR full or read-only): not made, or undone.
  'REGISTRY.STATE_NOT_SAVED': { http: 500, grpc: GrpcStatus.INTERNAL },
  'AUTH.UNAUTHENTICATED': { http: 401, grpc: GrpcStatus.UNAUTHENTICATED },
  // Known (a verified client certificate) but not allowed (ADMIN_CLIENT_NAMES).
  'AUTH.FORBIDDEN': { http: 403, grpc: GrpcStatus.PERMISSION_DENIED },
  // A client over its quota: PROTOCOL.md's RESOURCE_EXHAUSTED for rate limits, with Retry-After.
  'CLIENT.RATE_LIMITED': { http: 429, grpc: GrpcStatus.RESOURCE_EXHAUSTED },
  // A body past MAX_REQUEST_BYTES once decompressed (gRPC refuses large messages itself, the same way).
  'CLIENT.BODY_TOO_LARGE': { http: 413, grpc: GrpcStatus.RESOURCE_EXHAUSTED },
  // RFC 9110 §15.5.16: a content coding the server does not read is a 415 (Triton answers 501).
  'CLIENT.UNSUPPORTED_CONTENT_ENCODING': { http: 415, grpc: GrpcStatus.INVALID_ARGUMENT },
  'SERVER.NOT_READY': { http: 503, grpc: GrpcStatus.UNAVAILABLE },
  // The server holds as many request bytes (or connections) as it may: busy, try again.
  'SERVER.OVERLOADED': { http: 503, grpc: GrpcStatus.UNAVAILABLE },
  // Over MAX_REQUEST_BYTES: what grpc-js answers a message over its receive limit.
  'CLIENT.REQUEST_TOO_LARGE': { http: 413, grpc: GrpcStatus.RESOURCE_EXHAUSTED },
  'INFERENCE.INVALID_REQUEST': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  'INFERENCE.INVALID_INPUT': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  'INFERENCE.INVALID_DATATYPE': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  'INFERENCE.INVALID_SHAPE': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  'INFERENCE.INVALID_DATA': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  'INFERENCE.INVALID_OUTPUT': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  'INFERENCE.RUNTIME_ERROR': { http: 500, grpc: GrpcStatus.INTERNAL },
  // Triton maps "exceeds maximum queue size" to UNAVAILABLE: the server is busy, try again.
  'INFERENCE.QUEUE_FULL': { http: 503, grpc: GrpcStatus.UNAVAILABLE },
  'INFERENCE.DEADLINE_EXCEEDED': { http: 504, grpc: GrpcStatus.DEADLINE_EXCEEDED },
  // nginx's "client closed request": the client is gone, so only the access log sees it.
  'INFERENCE.CANCELLED': { http: 499, grpc: GrpcStatus.CANCELLED },
  // A version failing too often is not run for a while: busy, try again (after Retry-After).
  'INFERENCE.CIRCUIT_OPEN': { http: 503, grpc: GrpcStatus.UNAVAILABLE },
  // A version holding as many requests as its limit allows: load shed like a full queue.
  'INFERENCE.CONCURRENCY_LIMITED': { http: 503, grpc: GrpcStatus.UNAVAILABLE },
  // Triton: client shared memory turned off (--allow-client-shm) and CUDA shared memory are UNSUPPORTED.
  // An answer larger than MAX_RESPONSE_BYTES: the request asked for more than the server gives (like SHARED_MEMORY.LIMIT_EXCEEDED).
  'INFERENCE.RESPONSE_TOO_LARGE': { http: 400, grpc: GrpcStatus.RESOURCE_EXHAUSTED },
  // A generation whose prompt (with max_tokens) passes max_model_len or the whole KV cache: it could never run.
  'GENERATION.TOO_LONG': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  // Triton: client shared memory turned off (--allow-client-shm) and CUDA shared memory are UNSUPPORTED.
  'SHARED_MEMORY.UNSUPPORTED': { http: 501, grpc: GrpcStatus.UNIMPLEMENTED },
  'SHARED_MEMORY.REGION_NOT_FOUND': { http: 404, grpc: GrpcStatus.NOT_FOUND },
  // Triton answers a name registered twice with ALREADY_EXISTS, which its HTTP server sends as 400.
  'SHARED_MEMORY.REGION_EXISTS': { http: 400, grpc: GrpcStatus.ALREADY_EXISTS },
  'SHARED_MEMORY.INVALID_REGION': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  'SHARED_MEMORY.LIMIT_EXCEEDED': { http: 400, grpc: GrpcStatus.RESOURCE_EXHAUSTED },
  'ROLLOUT.INVALID_SPEC': { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT },
  'ROLLOUT.VERSION_NOT_READY': { http: 409, grpc: GrpcStatus.FAILED_PRECONDITION },
  'ROLLOUT.NOT_FOUND': { http: 404, grpc: GrpcStatus.NOT_FOUND },
  'ROLLOUT.INVALID_TRANSITION': { http: 409, grpc: GrpcStatus.FAILED_PRECONDITION },
};
