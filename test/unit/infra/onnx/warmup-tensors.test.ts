import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { WarmupTensor } from '../../../../src/domain/inference/inference-engine.port.js';
import { warmupTensor } from '../../../../src/infra/onnx/warmup-tensors.js';

describe('warmupTensor: the values of a warm-up input, as the session worker builds them', () => {
  let dir: string;
  const input = (overrides: Partial<WarmupTensor>): WarmupTensor => ({ name: 'x', datatype: 'FP32', shape: [2, 3], rows: 2, values: { kind: 'zero' }, ...overrides });
  const file = (name: string) => ({ kind: 'file' as const, file: name, path: join(dir, name) });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'warmup-tensors-'));
    await writeFile(join(dir, 'row.bin'), Buffer.from(Float32Array.of(1.5, -2, 3, 99).buffer)); // one row of 3, and a byte more than needed
    await writeFile(join(dir, 'short.bin'), Buffer.from(Float32Array.of(1.5, -2).buffer));
    await writeFile(join(dir, 'texts.bin'), Buffer.from([2, 0, 0, 0, 0x34, 0x32, 0, 0, 0, 0]));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('zeros of the datatype, empty strings for BYTES', async () => {
    assert.deepEqual(await warmupTensor(input({})), { name: 'x', datatype: 'FP32', shape: [2, 3], data: new Float32Array(6) });
    assert.deepEqual((await warmupTensor(input({ datatype: 'INT64' }))).data, new BigInt64Array(6));
    assert.deepEqual((await warmupTensor(input({ datatype: 'BYTES' }))).data, ['', '', '', '', '', '']);
  });

  it('random bytes (BOOL elements 0 or 1; BYTES falls back to empty strings, as in Triton)', async () => {
    const values = (await warmupTensor(input({ shape: [1, 4096], rows: 1, datatype: 'UINT8', values: { kind: 'random' } }))).data as Uint8Array;
    assert.ok(new Set(values).size > 100, 'random bytes');
    const bools = (await warmupTensor(input({ shape: [1, 4096], rows: 1, datatype: 'BOOL', values: { kind: 'random' } }))).data as Uint8Array;
    assert.deepEqual([...new Set(bools)].sort(), [0, 1]);
    assert.deepEqual((await warmupTensor(input({ datatype: 'BYTES', values: { kind: 'random' } }))).data, ['', '', '', '', '', '']);
  });

  it("a file's first row, repeated for every row (a longer file is fine, as in Triton)", async () => {
    assert.deepEqual((await warmupTensor(input({ values: file('row.bin') }))).data, Float32Array.of(1.5, -2, 3, 1.5, -2, 3));
  });

  it('BYTES from a file: length-prefixed elements, one row of them, repeated', async () => {
    assert.deepEqual((await warmupTensor(input({ datatype: 'BYTES', shape: [3, 2], rows: 3, values: file('texts.bin') }))).data, ['42', '', '42', '', '42', '']);
  });

  it('refuses a file shorter than a row, a BYTES file of another element count, a missing file, naming the input and the file', async () => {
    await assert.rejects(warmupTensor(input({ values: file('short.bin') })), /input 'x': its warm-up file 'short\.bin' holds 8 bytes, but one row of it is 12 bytes/);
    await assert.rejects(warmupTensor(input({ datatype: 'BYTES', values: file('texts.bin') })), /input 'x': its warm-up file 'texts\.bin' holds 2 elements, but one row of it is 3/);
    await assert.rejects(warmupTensor(input({ datatype: 'BYTES', shape: [1, 2], rows: 1, values: file('row.bin') })), /its warm-up file 'row\.bin' ends inside element 0/);
    await assert.rejects(warmupTensor(input({ values: file('absent.bin') })), /input 'x': its warm-up file 'absent\.bin' cannot be read/);
  });

  it('refuses a shape over 64 MiB before allocating it', async () => {
    await assert.rejects(warmupTensor(input({ shape: [1, 1 << 30], rows: 1 })), /more than the 67108864 bytes a warm-up sample may/);
  });
});
