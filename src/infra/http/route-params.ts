import { DomainError } from '../../domain/shared/domain-error.js';

/** The header a client sets its timeout with, in milliseconds (or the `timeout` parameter, in microseconds). */
export const TIMEOUT_HEADER = 'x-timeout-ms';

/** The client's timeout from {@link TIMEOUT_HEADER}, in microseconds, or undefined when it sets none. */
export function parseTimeoutHeader(headers: Readonly<Record<string, string | string[] | undefined>>): number | undefined {
  const value = headers[TIMEOUT_HEADER];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^\d{1,12}$/.test(value.trim())) {
    throw new DomainError('INFERENCE.INVALID_REQUEST', `header ${TIMEOUT_HEADER} is ${JSON.stringify(value)}, expected a whole number of milliseconds`);
  }
  return Number(value.trim()) * 1000;
}
