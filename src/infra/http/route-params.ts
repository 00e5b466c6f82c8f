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

/** A getter of a request's headers by lower-case name: the first value of a header Node gives as an array. */
export function headerGetter(headers: Readonly<Record<string, string | string[] | undefined>>): (name: string) => string | undefined {
  return (name) => {
    const value = headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
}

/**
 * A request's headers as a record of text (a command's `headers`): the first value of a header
 * Node gives as an array (`set-cookie`). Node already names them in lower case and joins repeated
 * ones, so the headers object itself is the record unless it holds an array: no copy then.
 */
export function headerRecord(headers: Readonly<Record<string, string | string[] | undefined>>): Readonly<Record<string, string>> {
  for (const name in headers) {
    if (typeof headers[name] !== 'string') return textHeaders(headers);
  }
  return headers as Readonly<Record<string, string>>;
}

function textHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Readonly<Record<string, string>> {
  const record: Record<string, string> = {};
  for (const name in headers) {
    const value = headers[name];
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined) record[name] = first;
  }
  return record;
}
