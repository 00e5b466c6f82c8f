import { describe, it } from 'node:test';
import { z } from 'zod';
import type { AppConfig } from '../../../../src/infra/config/app-config.js';
import { JsonBody, parseBody } from '../../../../src/infra/http/request-body.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';

/** The admin API's bodies are refused with a code of their own (a 400 like any invalid argument). */
describe('admin request bodies', () => {
  const pipe = new JsonBody({ MAX_JSON_DEPTH: 3 } as AppConfig);

  it('a body that is not JSON, or nests too deep, is an ADMIN.INVALID_REQUEST', () => {
    assertDomainError(() => pipe.transform(Buffer.from('{"force":')), 'ADMIN.INVALID_REQUEST', 'the body is not valid JSON');
    assertDomainError(() => pipe.transform(Buffer.from('{"a":[[[1]]]}')), 'ADMIN.INVALID_REQUEST', 'MAX_JSON_DEPTH (3 levels)');
    assertDomainError(() => pipe.transform(Buffer.from('{"__proto__":{}}')), 'ADMIN.INVALID_REQUEST', 'prototype');
  });

  it('a body that does not match its schema is refused with the code given, naming the field', () => {
    const schema = z.strictObject({ force: z.boolean().optional() });
    assertDomainError(() => parseBody(schema, pipe.transform(Buffer.from('{"force":"yes"}')), 'ADMIN.INVALID_REQUEST'), 'ADMIN.INVALID_REQUEST', 'force: ');
    assertDomainError(() => parseBody(schema, 7, 'INFERENCE.INVALID_REQUEST'), 'INFERENCE.INVALID_REQUEST', 'body: ');
  });
});
