import { DomainError } from '../../domain/shared/domain-error.js';

/** A `{version}` path segment: a positive integer, or absent for "the version the server chooses". */
export function parseVersion(segment: string | undefined): number | undefined {
  if (segment === undefined || segment === '') return undefined;
  if (!/^[1-9]\d{0,15}$/.test(segment)) {
    throw new DomainError('INFERENCE.INVALID_REQUEST', `model version '${segment}' is not a positive integer`);
  }
  return Number(segment);
}
