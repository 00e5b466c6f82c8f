import { DomainError } from '../shared/domain-error.js';

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const VERSION = /^[1-9]\d{0,15}$/;

/**
 * A model name an operator may use to create or change a model: letters, digits, `_`, `.`, `-`,
 * starting with a letter or digit, at most 128 characters, and no `..`. It is a directory name in
 * the repository, so nothing that could leave it (separators, dot segments, NUL, control or
 * percent-encoded characters) ever passes.
 */
export function checkedModelName(raw: string): string {
  if (!MODEL_NAME.test(raw) || raw.includes('..')) {
    throw new DomainError(
      'REGISTRY.INVALID_NAME',
      `model name ${JSON.stringify(raw.slice(0, 200))} is not allowed: use 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit, without '..'`,
    );
  }
  return raw;
}

/** A version as a path segment: a positive integer without leading zeros. */
export function checkedVersion(raw: string): number {
  if (!VERSION.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new DomainError('REGISTRY.INVALID_NAME', `version ${JSON.stringify(raw.slice(0, 40))} is not a positive integer without leading zeros`);
  }
  return Number(raw);
}

/**
 * The version a client names (a path segment, a protobuf field): a positive integer, or absent or
 * empty for "the version the server chooses".
 */
export function requestedVersion(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (!VERSION.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new DomainError('INFERENCE.INVALID_REQUEST', `model version '${raw.slice(0, 40)}' is not a positive integer`);
  }
  return Number(raw);
}
