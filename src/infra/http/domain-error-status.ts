import type { DomainErrorCode } from '../../domain/shared/domain-error.js';

/** The one table from domain error codes to transport statuses (gRPC codes join it with the gRPC transport). */
export const HTTP_STATUS_OF: Record<DomainErrorCode, number> = {
  'REGISTRY.MODEL_NOT_FOUND': 404,
  'REGISTRY.VERSION_NOT_FOUND': 404,
  'REGISTRY.VERSION_NOT_READY': 503,
  'REGISTRY.INVALID_CONFIG': 400,
  'REGISTRY.INVALID_TRANSITION': 409,
  'REGISTRY.STATE_CONFLICT': 409,
  'REGISTRY.INVALID_NAME': 400,
  // Triton answers a failed repository load with 400.
  'REGISTRY.LOAD_FAILED': 400,
  'REGISTRY.VERSION_EXISTS': 409,
  'AUTH.UNAUTHENTICATED': 401,
  'SERVER.NOT_READY': 503,
  'INFERENCE.INVALID_REQUEST': 400,
  'INFERENCE.INVALID_INPUT': 400,
  'INFERENCE.INVALID_DATATYPE': 400,
  'INFERENCE.INVALID_SHAPE': 400,
  'INFERENCE.INVALID_DATA': 400,
  'INFERENCE.INVALID_OUTPUT': 400,
  'INFERENCE.RUNTIME_ERROR': 500,
  'INFERENCE.QUEUE_FULL': 503,
  'INFERENCE.DEADLINE_EXCEEDED': 504,
  // nginx's "client closed request": the client is gone, so only the access log sees it.
  'INFERENCE.CANCELLED': 499,
};
