import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Tensor } from '../../../src/domain/inference/tensor.js';
import { PosixSharedMemory } from '../../../src/infra/shared-memory/posix-shared-memory.js';
import { assertDomainError } from '../../unit/support/domain-error.assertions.js';

/** A UINT8 output: its raw bytes are its elements. */
function bytesOutput(name: string, ...bytes: number[]): Tensor {
  return { name, datatype: 'UINT8', shape: [bytes.length], data: Uint8Array.from(bytes) };
}

/**
 * The adapter for real, over files in a directory of its own standing in for /dev/shm: descriptors
 * held and released (counted in /proc/self/fd), objects that change under it, what a key may name.
 */
describe('PosixSharedMemory', () => {
  let directory: string;
  let memory: PosixSharedMemory;
  const limits = { maxRegions: 8, maxTotalBytes: 1024 };

  /** Descriptors this process holds on files of the test's directory. */
  const held = (): number => readdirSync('/proc/self/fd').filter((fd) => (readlinkOrEmpty(`/proc/self/fd/${fd}`)).startsWith(directory)).length;

  beforeEach(() => {
    directory = mkdtempSync(join(tmpdir(), 'shm-dir-'));
    memory = new PosixSharedMemory({ allowClients: true, limits, directory });
    writeFileSync(join(directory, 'object'), Buffer.from([...Array(32).keys()]));
  });

  afterEach(() => {
    memory.onApplicationShutdown();
    rmSync(directory, { recursive: true, force: true });
  });

  it('reads a slice at the region offset plus the slice offset, as a copy', () => {
    memory.register('r', '/object', 8, 16);
    const bytes = memory.read({ region: 'r', offset: 4, byteSize: 4 }, 'x');
    assert.deepEqual([...bytes], [12, 13, 14, 15]);
    writeFileSync(join(directory, 'object'), Buffer.alloc(32));
    assert.deepEqual([...bytes], [12, 13, 14, 15]);
  });

  it('writes an output into its slice, and refuses one that does not fit', () => {
    memory.register('r', 'object', 16, 16);
    const outputs = memory.reserve(new Map([['y', { region: 'r', offset: 4, byteSize: 4 }]]));
    outputs.write(bytesOutput('y', 1, 2, 3));
    assertDomainError(() => outputs.write(bytesOutput('y', 1, 2, 3, 4, 5)), 'SHARED_MEMORY.INVALID_REGION', "output 'y' has 5 bytes", "region 'r'");
    outputs.release();
    assert.deepEqual([...readFileSync(join(directory, 'object')).subarray(20, 24)], [1, 2, 3, 23]);
  });

  it('keeps a region that requests still write to until the last lets go (Triton), then closes it', () => {
    memory.register('r', 'object', 0, 32);
    assert.equal(held(), 1);
    const outputs = memory.reserve(new Map([['y', { region: 'r', offset: 0, byteSize: 4 }]]));
    memory.unregister('r');
    assert.equal(memory.status().length, 0);
    assert.equal(held(), 1);
    assertDomainError(() => memory.read({ region: 'r', offset: 0, byteSize: 4 }, 'x'), 'SHARED_MEMORY.INVALID_REGION', "region 'r'");
    outputs.write(bytesOutput('y', 9));
    outputs.release();
    outputs.release();
    assert.equal(held(), 0);
    assert.equal(readFileSync(join(directory, 'object'))[0], 9);
  });

  it('closes every descriptor on unregister and at shutdown', () => {
    for (let round = 0; round < 50; round++) {
      memory.register(`r${round}`, 'object', 0, 8);
      memory.unregister(`r${round}`);
    }
    assert.equal(held(), 0);
    for (let i = 0; i < 4; i++) memory.register(`r${i}`, 'object', 0, 8);
    assert.equal(held(), 4);
    memory.onApplicationShutdown();
    assert.equal(held(), 0);
    assert.deepEqual(memory.status(), []);
  });

  it('answers a short read with a 400 when the client shrinks its object (mmap would fault)', () => {
    memory.register('r', 'object', 0, 32);
    truncateSync(join(directory, 'object'), 8);
    assertDomainError(() => memory.read({ region: 'r', offset: 4, byteSize: 16 }, 'x'), 'SHARED_MEMORY.INVALID_REGION', "input 'x'", 'shrunk', "region 'r'");
    const outputs = memory.reserve(new Map([['y', { region: 'r', offset: 16, byteSize: 4 }]]));
    assertDomainError(() => outputs.write(bytesOutput('y', 1)), 'SHARED_MEMORY.INVALID_REGION', "output 'y'", 'shrunk');
    outputs.release();
    assert.equal(readFileSync(join(directory, 'object')).length, 8, 'a write must not grow the object back');
  });

  it('opens only regular files of its directory, never through a symbolic link', () => {
    const outside = join(mkdtempSync(join(tmpdir(), 'shm-outside-')), 'secret');
    writeFileSync(outside, 'x'.repeat(32));
    symlinkSync(outside, join(directory, 'link'));
    execFileSync('mkfifo', [join(directory, 'fifo')]);
    assertDomainError(() => memory.register('l', '/link', 0, 8), 'SHARED_MEMORY.INVALID_REGION', "region 'l'", 'symbolic link');
    assertDomainError(() => memory.register('f', '/fifo', 0, 8), 'SHARED_MEMORY.INVALID_REGION', "region 'f'", 'not a regular file');
    assertDomainError(() => memory.register('t', '/../' + outside, 0, 8), 'SHARED_MEMORY.INVALID_REGION', "region 't'", 'key');
    assert.equal(held(), 0);
    rmSync(outside, { force: true });
  });

  it('refuses a second region of the same name, past the limits, and when clients may not register', () => {
    memory.register('r', 'object', 0, 8);
    assertDomainError(() => memory.register('r', 'object', 0, 8), 'SHARED_MEMORY.REGION_EXISTS', "'r'");
    assertDomainError(() => memory.register('big', 'object', 0, 2000), 'SHARED_MEMORY.LIMIT_EXCEEDED', 'SHARED_MEMORY_MAX_BYTES');
    const off = new PosixSharedMemory({ allowClients: false, limits, directory });
    assertDomainError(() => off.register('r', 'object', 0, 8), 'SHARED_MEMORY.UNSUPPORTED', 'ALLOW_CLIENT_SHM');
    assertDomainError(() => off.unregister(), 'SHARED_MEMORY.UNSUPPORTED', 'ALLOW_CLIENT_SHM');
    assertDomainError(() => off.read({ region: 'r', offset: 0, byteSize: 1 }, 'x'), 'SHARED_MEMORY.INVALID_REGION', "'r'", 'disabled');
  });

  it('reports a region by name, and an unknown name as not found', () => {
    memory.register('r', '/object', 4, 8);
    assert.deepEqual(memory.status('r'), [{ name: 'r', key: '/object', offset: 4, byteSize: 8 }]);
    assertDomainError(() => memory.status('nowhere'), 'SHARED_MEMORY.REGION_NOT_FOUND', "'nowhere'");
  });
});

function readlinkOrEmpty(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}
