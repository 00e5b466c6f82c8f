import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuQuota } from '../../../../src/infra/host/cpu-quota.js';

const PERIOD = 100_000;

describe('cpuQuota', () => {
  let dir = '';
  let files = 0;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'cpu-quota-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** The CPUs granted by a cgroup v2 `cpu.max` file holding `content`. */
  function quotaFor(content: string): number {
    const path = join(dir, `cpu.max.${files++}`);
    writeFileSync(path, content);
    return cpuQuota(path);
  }

  const cpus = availableParallelism();

  it('gives every CPU when there is no quota (max)', () => {
    assert.equal(quotaFor(`max ${PERIOD}\n`), cpus);
  });

  it('rounds a fractional quota down: 1.5 CPUs is 1', () => {
    assert.equal(quotaFor(`150000 ${PERIOD}\n`), 1);
  });

  it('gives at least one CPU for a quota below one', () => {
    assert.equal(quotaFor(`50000 ${PERIOD}\n`), 1);
  });

  it('gives the whole CPUs of a quota within the machine', () => {
    assert.equal(quotaFor(`400000 ${PERIOD}\n`), Math.min(4, cpus));
  });

  it('is capped at the CPUs the OS offers', () => {
    assert.equal(quotaFor(`${(cpus + 4) * PERIOD} ${PERIOD}\n`), cpus);
  });

  it('falls back to every CPU for a file it cannot read as a quota', () => {
    assert.equal(quotaFor('garbage'), cpus);
    assert.equal(quotaFor(''), cpus);
    assert.equal(quotaFor(`0 ${PERIOD}`), cpus);
  });

  it('falls back to every CPU when there is no cpu.max file', () => {
    assert.equal(cpuQuota(join(dir, 'missing', 'cpu.max')), cpus);
  });
});
