import assert from 'node:assert/strict';
import { DomainError, type DomainErrorCode } from '../../../src/domain/shared/domain-error.js';

/** What `fn` threw (fails the test when it threw nothing). */
export function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  assert.fail('expected an error to be thrown, but none was');
}

/**
 * Asserts that `fn` throws a DomainError with `code` whose message contains every one of `mentions`;
 * returns the error for further checks.
 */
export function assertDomainError(fn: () => unknown, code: DomainErrorCode, ...mentions: string[]): DomainError {
  const error = thrownBy(fn);
  assert.ok(error instanceof DomainError, `expected a DomainError, got ${String(error)}`);
  assert.equal(error.code, code, `wrong code for: ${error.message}`);
  assertMentions(error.message, mentions);
  return error;
}

/** Asserts that `fn` throws a plain Error (of `type` when given) whose message contains every one of `mentions`. */
export function assertErrorMentions(fn: () => unknown, mentions: readonly string[], type: new (...args: never[]) => Error = Error): Error {
  const error = thrownBy(fn);
  assert.ok(error instanceof type, `expected a ${type.name}, got ${String(error)}`);
  assertMentions(error.message, mentions);
  return error;
}

function assertMentions(message: string, mentions: readonly string[]): void {
  for (const mention of mentions) {
    assert.ok(message.includes(mention), `expected the message to mention ${JSON.stringify(mention)}, got: ${message}`);
  }
}

/**
 * Awaits `promise` and asserts it rejects with a DomainError with `code` whose message contains every
 * one of `mentions`; returns the error for further checks.
 */
export async function assertRejectsWithDomainError(promise: Promise<unknown>, code: DomainErrorCode, ...mentions: string[]): Promise<DomainError> {
  let error: unknown;
  await assert.rejects(promise, (thrown) => {
    error = thrown;
    return true;
  });
  assert.ok(error instanceof DomainError, `expected a DomainError, got ${String(error)}`);
  assert.equal(error.code, code, `wrong code for: ${error.message}`);
  assertMentions(error.message, mentions);
  return error;
}

/** The DomainError `promise` rejects with (fails the test when it resolves, or rejects with anything else). */
export async function rejection(promise: Promise<unknown>): Promise<DomainError> {
  const error = await promise.then(
    () => assert.fail('expected a rejection'),
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof DomainError, String(error));
  return error;
}
