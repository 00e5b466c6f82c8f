import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DomainError, ERROR_CODES, errorKindOf, FAILURE_REASONS, UNNAMED_ERROR, type DomainErrorCode, type ErrorKind } from '../../../../src/domain/shared/domain-error.js';
import { REPO_ROOT } from '../../../support/repo-files.js';

const CODES = Object.keys(ERROR_CODES) as DomainErrorCode[];
const codesWhere = (attribute: (kind: ErrorKind) => boolean) => CODES.filter((code) => attribute(ERROR_CODES[code])).sort();

function sourceFiles(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

describe('the error codes: one table of categories and attributes', () => {
  it('has every code the server raises, and only those', () => {
    const table = join(REPO_ROOT, 'src/domain/shared/domain-error.ts');
    const raised = new Set<string>();
    for (const file of sourceFiles(join(REPO_ROOT, 'src'))) {
      if (file === table) continue;
      for (const [, code] of readFileSync(file, 'utf8').matchAll(/'([A-Z][A-Z_]*\.[A-Z][A-Z_]*)'/g)) raised.add(code!);
    }
    assert.deepEqual([...raised].sort(), [...CODES].sort(), 'a code in the table that nothing raises, or a code raised that the table lacks');
  });

  it("blames the version only for its runtime's failure and a missed deadline (its circuit breaker and its rollout's SLO count nothing else)", () => {
    assert.deepEqual(codesWhere((kind) => kind.blamesVersion), ['INFERENCE.DEADLINE_EXCEEDED', 'INFERENCE.RUNTIME_ERROR']);
    assert.equal(errorKindOf(new Error('a bug')).blamesVersion, true, 'an error without a code is the version’s');
  });

  it('calls a full queue and a missed deadline overload (the adaptive in-flight limit shrinks on them)', () => {
    assert.deepEqual(codesWhere((kind) => kind.overload), ['INFERENCE.DEADLINE_EXCEEDED', 'INFERENCE.QUEUE_FULL']);
    assert.equal(errorKindOf(new Error('a bug')).overload, false);
  });

  it('calls a full queue and a reached in-flight limit shed, and counts them as rejected', () => {
    assert.deepEqual(codesWhere((kind) => kind.shed), ['INFERENCE.CONCURRENCY_LIMITED', 'INFERENCE.QUEUE_FULL']);
    assert.deepEqual(codesWhere((kind) => kind.failureReason === 'rejected'), codesWhere((kind) => kind.shed));
  });

  it("gives each code the failure metric's reason", () => {
    const reasons = Object.fromEntries(FAILURE_REASONS.map((reason) => [reason, codesWhere((kind) => kind.failureReason === reason)]));
    const named: Record<string, string[]> = {
      rejected: ['INFERENCE.CONCURRENCY_LIMITED', 'INFERENCE.QUEUE_FULL'],
      timeout: ['INFERENCE.DEADLINE_EXCEEDED'],
      cancelled: ['INFERENCE.CANCELLED'],
      runtime: ['INFERENCE.RUNTIME_ERROR'],
      not_found: ['JOBS.NOT_FOUND', 'REGISTRY.MODEL_NOT_FOUND', 'REGISTRY.VERSION_NOT_FOUND', 'SERVER.NOT_ON_ADMIN_PORT'],
      unavailable: ['INFERENCE.CIRCUIT_OPEN', 'JOBS.QUEUE_FULL', 'JOBS.STORE_UNAVAILABLE', 'REGISTRY.VERSION_NOT_READY', 'SERVER.NOT_READY', 'SERVER.STATE_STORE_UNAVAILABLE'],
    };
    const invalid = CODES.filter((code) => !Object.values(named).flat().includes(code)).sort();
    assert.deepEqual(reasons, { ...named, invalid });
    assert.equal(errorKindOf('thrown text').failureReason, 'runtime');
  });

  it('reads the kind of an error from its code', () => {
    const error = new DomainError('INFERENCE.QUEUE_FULL', 'full');
    assert.equal(error.kind, ERROR_CODES['INFERENCE.QUEUE_FULL']);
    assert.equal(errorKindOf(error), error.kind);
    assert.equal(errorKindOf(undefined), UNNAMED_ERROR);
    assert.equal(UNNAMED_ERROR.category, 'INTERNAL');
  });

  it('gives the admin API its own code for a body that does not fit, a client error as before', () => {
    assert.deepEqual(ERROR_CODES['ADMIN.INVALID_REQUEST'], ERROR_CODES['INFERENCE.INVALID_REQUEST']);
  });
});
