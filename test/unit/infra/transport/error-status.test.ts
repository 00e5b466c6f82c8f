import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { DomainError, ERROR_CODES, type DomainErrorCode } from '../../../../src/domain/shared/domain-error.js';
import { grpcStatusOf, grpcStatusOfError } from '../../../../src/infra/grpc/grpc-error-status.js';
import { httpStatusOf, httpStatusOfError } from '../../../../src/infra/http/http-error-status.js';

/**
 * Every code's statuses as the wire has them (the table each transport derived them from before
 * the codes had categories), pinned: a category or a transport's mapping that moves one fails here.
 */
const WIRE_STATUS: Record<DomainErrorCode, readonly [number, keyof typeof GrpcStatus]> = {
  'REGISTRY.MODEL_NOT_FOUND': [404, 'NOT_FOUND'],
  'REGISTRY.VERSION_NOT_FOUND': [404, 'NOT_FOUND'],
  'REGISTRY.VERSION_NOT_READY': [503, 'UNAVAILABLE'],
  'REGISTRY.INVALID_CONFIG': [400, 'INVALID_ARGUMENT'],
  'REGISTRY.INVALID_TRANSITION': [409, 'FAILED_PRECONDITION'],
  'REGISTRY.STATE_CONFLICT': [409, 'ABORTED'],
  'REGISTRY.INVALID_NAME': [400, 'INVALID_ARGUMENT'],
  'REGISTRY.LOAD_FAILED': [400, 'INVALID_ARGUMENT'],
  'REGISTRY.VERSION_EXISTS': [409, 'ALREADY_EXISTS'],
  'REGISTRY.STATE_NOT_SAVED': [500, 'INTERNAL'],
  'AUTH.UNAUTHENTICATED': [401, 'UNAUTHENTICATED'],
  'AUTH.FORBIDDEN': [403, 'PERMISSION_DENIED'],
  'AUTH.ADMIN_PORT_ONLY': [403, 'PERMISSION_DENIED'],
  'SERVER.NOT_ON_ADMIN_PORT': [404, 'NOT_FOUND'],
  'CLIENT.RATE_LIMITED': [429, 'RESOURCE_EXHAUSTED'],
  'CLIENT.BODY_TOO_LARGE': [413, 'RESOURCE_EXHAUSTED'],
  'CLIENT.UNSUPPORTED_CONTENT_ENCODING': [415, 'INVALID_ARGUMENT'],
  'SERVER.NOT_READY': [503, 'UNAVAILABLE'],
  'SERVER.OVERLOADED': [503, 'UNAVAILABLE'],
  'CLIENT.REQUEST_TOO_LARGE': [413, 'RESOURCE_EXHAUSTED'],
  'INFERENCE.INVALID_REQUEST': [400, 'INVALID_ARGUMENT'],
  'INFERENCE.INVALID_INPUT': [400, 'INVALID_ARGUMENT'],
  'INFERENCE.INVALID_DATATYPE': [400, 'INVALID_ARGUMENT'],
  'INFERENCE.INVALID_SHAPE': [400, 'INVALID_ARGUMENT'],
  'INFERENCE.INVALID_DATA': [400, 'INVALID_ARGUMENT'],
  'INFERENCE.INVALID_OUTPUT': [400, 'INVALID_ARGUMENT'],
  'INFERENCE.RUNTIME_ERROR': [500, 'INTERNAL'],
  'INFERENCE.QUEUE_FULL': [503, 'UNAVAILABLE'],
  'INFERENCE.DEADLINE_EXCEEDED': [504, 'DEADLINE_EXCEEDED'],
  'INFERENCE.CANCELLED': [499, 'CANCELLED'],
  'INFERENCE.CIRCUIT_OPEN': [503, 'UNAVAILABLE'],
  'INFERENCE.CONCURRENCY_LIMITED': [503, 'UNAVAILABLE'],
  'INFERENCE.RESPONSE_TOO_LARGE': [400, 'RESOURCE_EXHAUSTED'],
  'SHARED_MEMORY.UNSUPPORTED': [501, 'UNIMPLEMENTED'],
  'SHARED_MEMORY.REGION_NOT_FOUND': [404, 'NOT_FOUND'],
  'SHARED_MEMORY.REGION_EXISTS': [400, 'ALREADY_EXISTS'],
  'SHARED_MEMORY.INVALID_REGION': [400, 'INVALID_ARGUMENT'],
  'SHARED_MEMORY.LIMIT_EXCEEDED': [400, 'RESOURCE_EXHAUSTED'],
  'ROLLOUT.INVALID_SPEC': [400, 'INVALID_ARGUMENT'],
  'ROLLOUT.VERSION_NOT_READY': [409, 'FAILED_PRECONDITION'],
  'ROLLOUT.NOT_FOUND': [404, 'NOT_FOUND'],
  'ROLLOUT.INVALID_TRANSITION': [409, 'FAILED_PRECONDITION'],
  'ADMIN.INVALID_REQUEST': [400, 'INVALID_ARGUMENT'],
  'SERVER.STATE_STORE_UNAVAILABLE': [503, 'UNAVAILABLE'],
  'GENERATION.TOO_LONG': [400, 'INVALID_ARGUMENT'],
  'JOBS.NOT_FOUND': [404, 'NOT_FOUND'],
  'JOBS.QUEUE_FULL': [503, 'UNAVAILABLE'],
  'JOBS.NOT_CANCELLABLE': [409, 'FAILED_PRECONDITION'],
  'JOBS.INVALID_TRANSITION': [409, 'FAILED_PRECONDITION'],
  'JOBS.IDEMPOTENCY_KEY_REUSED': [422, 'FAILED_PRECONDITION'],
  'JOBS.INVALID_IDEMPOTENCY_KEY': [400, 'INVALID_ARGUMENT'],
  'JOBS.STORE_UNAVAILABLE': [503, 'UNAVAILABLE'],
};

describe('each transport maps an error category to its status', () => {
  it('pins the HTTP and gRPC status of every code there is', () => {
    assert.deepEqual(Object.keys(WIRE_STATUS).sort(), Object.keys(ERROR_CODES).sort(), 'a code without a pinned status, or a pinned one no longer a code');
    for (const [code, [http, grpc]] of Object.entries(WIRE_STATUS) as [DomainErrorCode, readonly [number, keyof typeof GrpcStatus]][]) {
      assert.equal(httpStatusOf(code), http, `${code} over HTTP`);
      assert.equal(grpcStatusOf(code), GrpcStatus[grpc], `${code} over gRPC`);
    }
  });

  it('gives the codes of one category one status per transport, but for the exceptions the wire asks for', () => {
    const exceptions = new Set<DomainErrorCode>(['SHARED_MEMORY.REGION_EXISTS', 'JOBS.IDEMPOTENCY_KEY_REUSED']);
    const byCategory = new Map<string, Set<string>>();
    for (const code of Object.keys(ERROR_CODES) as DomainErrorCode[]) {
      if (exceptions.has(code)) continue;
      const statuses = byCategory.get(ERROR_CODES[code].category) ?? new Set();
      statuses.add(`${httpStatusOf(code)} ${grpcStatusOf(code)}`);
      byCategory.set(ERROR_CODES[code].category, statuses);
    }
    for (const [category, statuses] of byCategory) assert.equal(statuses.size, 1, `${category}: ${[...statuses].join(', ')}`);
    // Triton's HTTP server answers ALREADY_EXISTS with 400; the registry's version conflict stays a 409.
    assert.deepEqual([httpStatusOf('SHARED_MEMORY.REGION_EXISTS'), httpStatusOf('REGISTRY.VERSION_EXISTS')], [400, 409]);
    assert.equal(grpcStatusOf('SHARED_MEMORY.REGION_EXISTS'), grpcStatusOf('REGISTRY.VERSION_EXISTS'));
  });

  it('answers an error without a code as internal: 500, INTERNAL', () => {
    assert.equal(httpStatusOfError(new TypeError('a bug')), 500);
    assert.equal(grpcStatusOfError('thrown text'), GrpcStatus.INTERNAL);
    assert.equal(httpStatusOfError(new DomainError('INFERENCE.QUEUE_FULL', 'full')), 503);
    assert.equal(grpcStatusOfError(new DomainError('INFERENCE.DEADLINE_EXCEEDED', 'late')), GrpcStatus.DEADLINE_EXCEEDED);
  });
});
