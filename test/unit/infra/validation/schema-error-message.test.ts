import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { schemaErrorMessage } from '../../../../src/infra/validation/schema-error-message.js';

const schema = z.strictObject({ a: z.number(), b: z.strictObject({ c: z.string() }) });
const errorOf = (value: unknown) => {
  const parsed = schema.safeParse(value);
  assert.equal(parsed.success, false);
  return parsed.error!;
};

describe('a zod error as one message', () => {
  it('names the first issue by its dotted path', () => {
    assert.equal(schemaErrorMessage(errorOf({ a: 1, b: { c: 2 } })), 'b.c: Invalid input: expected string, received number');
  });

  it('names an issue of the value itself (root) as told, "(root)" by default', () => {
    assert.match(schemaErrorMessage(errorOf('text')), /^\(root\): /);
    assert.match(schemaErrorMessage(errorOf('text'), { root: 'body' }), /^body: /);
  });

  it('joins every issue when asked', () => {
    assert.equal(
      schemaErrorMessage(errorOf({ a: 'x', b: { c: 2 } }), { every: true }),
      'a: Invalid input: expected number, received string; b.c: Invalid input: expected string, received number',
    );
    assert.doesNotMatch(schemaErrorMessage(errorOf({ a: 'x', b: { c: 2 } })), /;/);
  });

  it('says where an issue is as the caller words it', () => {
    assert.equal(schemaErrorMessage(errorOf({ a: 'x', b: { c: 'y' } }), { at: (issue) => `field <${issue.path.join('/')}>` }), 'field <a>: Invalid input: expected number, received string');
  });
});
