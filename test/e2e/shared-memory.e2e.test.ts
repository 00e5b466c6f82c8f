import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { classifierModel, multiIoModel } from '../../scripts/build-models.js';
import { InferenceClient, rawBytes, rawOf, Status, type InferInputTensor, type ModelInferRequest, type ServiceError } from '../support/grpc-client.js';
import { getJson, makeRepository, postJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Triton's system shared memory extension end to end, as tritonclient uses it: the test creates
 * objects under /dev/shm (what `shm_open("/key")` makes), registers ranges of them as regions,
 * names them in inference requests over HTTP (JSON and binary bodies) and gRPC, and reads the
 * outputs back from the objects, byte for byte equal to a normal answer. Then the hostile cases
 * (keys that leave /dev/shm, symbolic links, ranges out of bounds, outputs that do not fit, regions
 * gone), descriptors released on unregister and at shutdown, the switch ALLOW_CLIENT_SHM, and CUDA.
 */

const SHM_DIR = '/dev/shm';
const PREFIX = `onnx-serving-e2e-${process.pid}`;
const ROWS = [6.7, 3.0, 5.2, 2.3, 5.1, 3.5, 1.4, 0.2]; // two classifier rows
let objects = 0;

/** Creates a shared memory object of `size` bytes holding `contents` at `at`; answers its key (with the leading '/'). */
async function createObject(size: number, contents: readonly { at: number; bytes: Uint8Array }[] = []): Promise<string> {
  const file = `${PREFIX}-${objects++}`;
  const bytes = Buffer.alloc(size);
  for (const { at, bytes: part } of contents) Buffer.from(part).copy(bytes, at);
  await writeFile(join(SHM_DIR, file), bytes, { mode: 0o600 });
  return `/${file}`;
}

const objectBytes = (key: string): Promise<Buffer> => readFile(join(SHM_DIR, key.slice(1)));

/** How many descriptors this process (the server runs in it) holds on this suite's objects. */
async function heldDescriptors(): Promise<number> {
  let held = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(join(SHM_DIR, PREFIX))) held++;
  }
  return held;
}

async function removeObjects(): Promise<void> {
  for (const file of await readdir(SHM_DIR)) if (file.startsWith(PREFIX)) await rm(join(SHM_DIR, file), { recursive: true, force: true });
}

const f32 = (values: readonly number[]): Uint8Array => new Uint8Array(Float32Array.from(values).buffer);
const i64 = (values: readonly bigint[]): Uint8Array => new Uint8Array(BigInt64Array.from(values).buffer);

/** Registers over HTTP as tritonclient does (JSON body, no content type). */
async function register(server: TestServer, name: string, body: Record<string, unknown>): Promise<{ status: number; body: any }> {
  const response = await fetch(`${server.url}/v2/systemsharedmemory/region/${encodeURIComponent(name)}/register`, {
    method: 'POST',
    body: new TextEncoder().encode(JSON.stringify(body)),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function unregister(server: TestServer, name?: string): Promise<number> {
  const path = name === undefined ? 'unregister' : `region/${encodeURIComponent(name)}/unregister`;
  return (await fetch(`${server.url}/v2/systemsharedmemory/${path}`, { method: 'POST' })).status;
}

const shm = (region: string, byteSize: number, offset?: number) => ({
  shared_memory_region: region,
  shared_memory_byte_size: byteSize,
  ...(offset === undefined ? {} : { shared_memory_offset: offset }),
});

interface HttpAnswer {
  readonly status: number;
  readonly json: any;
  /** The binary data of each output answered as binary data, by name. */
  readonly binary: Map<string, Buffer>;
}

/** An HTTP inference, JSON or with binary data after a JSON header; the answer split the same way. */
async function infer(server: TestServer, model: string, request: object, binary?: Uint8Array): Promise<HttpAnswer> {
  const json = Buffer.from(JSON.stringify(request));
  const response = await fetch(`${server.url}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: binary ? { 'inference-header-content-length': String(json.length) } : { 'content-type': 'application/json' },
    body: binary ? Buffer.concat([json, binary]) : json,
  });
  const bytes = Buffer.from(await response.arrayBuffer());
  const headerLength = Number(response.headers.get('inference-header-content-length') ?? bytes.length);
  const parsed = JSON.parse(bytes.subarray(0, headerLength).toString('utf8'));
  const outputs = new Map<string, Buffer>();
  let offset = headerLength;
  for (const output of parsed.outputs ?? []) {
    const size = output.parameters?.binary_data_size;
    if (size === undefined) continue;
    outputs.set(output.name, bytes.subarray(offset, offset + size));
    offset += size;
  }
  return { status: response.status, json: parsed, binary: outputs };
}

/** A normal inference of the same inputs, every output as binary data: the bytes to expect in shared memory. */
async function referenceOutputs(server: TestServer, model: string, inputs: object[]): Promise<Map<string, Buffer>> {
  const answer = await infer(server, model, { inputs, parameters: { binary_data_output: true } });
  assert.equal(answer.status, 200, JSON.stringify(answer.json));
  return answer.binary;
}

function rejectsWith(promise: Promise<unknown>, code: Status, details: RegExp): Promise<void> {
  return assert.rejects(promise, (error: ServiceError) => {
    assert.equal(error.code, code, `expected ${Status[code]}, got ${Status[error.code]}: ${error.details}`);
    assert.match(error.details, details);
    return true;
  });
}

describe('system shared memory', { skip: !existsSync(SHM_DIR) && 'no /dev/shm on this host' }, () => {
  let server: TestServer;
  let client: InferenceClient;

  before(async () => {
    server = await startTestServer(await makeRepository([{ name: 'classifier', onnx: classifierModel() }, { name: 'multi_io', onnx: multiIoModel() }]), { ALLOW_CLIENT_SHM: 'true' });
    client = new InferenceClient(server.server.grpcAddress);
  });

  after(async () => {
    client?.close();
    await server?.close();
    await removeObjects();
  });

  it('lists system_shared_memory among the extensions of GET /v2 and ServerMetadata', async () => {
    assert.ok((await getJson(`${server.url}/v2`)).body.extensions.includes('system_shared_memory'));
    assert.ok((await client.unary('ServerMetadata', {})).extensions.includes('system_shared_memory'));
  });

  describe('HTTP', () => {
    it('reads an input from a region and writes the outputs into one (JSON request): the bytes of a normal answer', async () => {
      // The region starts 8 bytes into its object; the input lies 16 bytes into the region.
      const input = await createObject(80, [{ at: 24, bytes: f32(ROWS) }]);
      const output = await createObject(64);
      assert.equal((await register(server, 'cls_in', { key: input, offset: 8, byte_size: 64 })).status, 200);
      assert.equal((await register(server, 'cls_out', { key: output, byte_size: 64 })).status, 200);

      const answer = await infer(server, 'classifier', {
        inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', parameters: shm('cls_in', 32, 16) }],
        outputs: [
          // tritonclient's set_shared_memory turns binary_data off and names the region.
          { name: 'probabilities', parameters: { binary_data: false, ...shm('cls_out', 24) } },
          { name: 'label', parameters: shm('cls_out', 16, 32) },
        ],
      });

      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      assert.deepEqual(answer.json.outputs, [
        { name: 'probabilities', datatype: 'FP32', shape: [2, 3] },
        { name: 'label', datatype: 'INT64', shape: [2] },
      ]);
      const expected = await referenceOutputs(server, 'classifier', [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: ROWS }]);
      const written = await objectBytes(output);
      assert.deepEqual(written.subarray(0, 24), expected.get('probabilities'));
      assert.deepEqual(written.subarray(32, 48), expected.get('label'));
      assert.deepEqual(new BigInt64Array(new Uint8Array(written.subarray(32, 48)).buffer), BigInt64Array.of(2n, 0n));
    });

    it('mixes shared memory, binary data and JSON in one binary request, BYTES included (length-prefixed)', async () => {
      const text = rawBytes(['hello']);
      const input = await createObject(32, [{ at: 0, bytes: f32([1, 2, 3]) }, { at: 16, bytes: text }]);
      const output = await createObject(64);
      assert.equal((await register(server, 'mio_in', { key: input, byte_size: 32 })).status, 200);
      assert.equal((await register(server, 'mio_out', { key: output, byte_size: 64 })).status, 200);
      const counts = i64([4n, 5n]);

      const answer = await infer(
        server,
        'multi_io',
        {
          inputs: [
            { name: 'features', shape: [1, 3], datatype: 'FP32', parameters: shm('mio_in', 12) },
            { name: 'counts', shape: [1, 2], datatype: 'INT64', parameters: { binary_data_size: counts.length } },
            { name: 'mask', shape: [1, 3], datatype: 'BOOL', data: [true, false, true] },
            { name: 'text', shape: [1, 1], datatype: 'BYTES', parameters: shm('mio_in', text.length, 16) },
          ],
          outputs: [
            { name: 'text_echo', parameters: shm('mio_out', 16) },
            { name: 'scaled', parameters: shm('mio_out', 12, 16) },
            { name: 'total' },
            { name: 'inverted_mask', parameters: { binary_data: true } },
          ],
        },
        counts,
      );

      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      assert.deepEqual(answer.json.outputs, [
        { name: 'text_echo', datatype: 'BYTES', shape: [1, 1] },
        { name: 'scaled', datatype: 'FP32', shape: [1, 3] },
        { name: 'total', datatype: 'INT64', shape: [1, 1], data: [9] },
        { name: 'inverted_mask', datatype: 'BOOL', shape: [1, 3], parameters: { binary_data_size: 3 } },
      ]);
      assert.deepEqual(answer.binary.get('inverted_mask'), Buffer.from([0, 1, 0]));
      const expected = await referenceOutputs(server, 'multi_io', [
        { name: 'features', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] },
        { name: 'counts', shape: [1, 2], datatype: 'INT64', data: [4, 5] },
        { name: 'mask', shape: [1, 3], datatype: 'BOOL', data: [true, false, true] },
        { name: 'text', shape: [1, 1], datatype: 'BYTES', data: ['hello'] },
      ]);
      const written = await objectBytes(output);
      assert.deepEqual(written.subarray(0, text.length), expected.get('text_echo'));
      assert.deepEqual(written.subarray(0, text.length), text);
      assert.deepEqual(written.subarray(16, 28), expected.get('scaled'));
    });

    it('reports regions: all, one by name (Triton\'s form), 404 for an unknown name', async () => {
      const key = await createObject(16);
      assert.equal((await register(server, 'listed', { key, offset: 4, byte_size: 8 })).status, 200);
      const all = await getJson(`${server.url}/v2/systemsharedmemory/status`);
      assert.equal(all.status, 200);
      assert.deepEqual(
        all.body.find((region: { name: string }) => region.name === 'listed'),
        { name: 'listed', key, offset: 4, byte_size: 8 },
      );
      assert.deepEqual((await getJson(`${server.url}/v2/systemsharedmemory/region/listed/status`)).body, [{ name: 'listed', key, offset: 4, byte_size: 8 }]);
      const unknown = await getJson(`${server.url}/v2/systemsharedmemory/region/nowhere/status`);
      assert.equal(unknown.status, 404);
      assert.match(unknown.body.error, /'nowhere'/);
      assert.equal(await unregister(server, 'listed'), 200);
      assert.equal((await getJson(`${server.url}/v2/systemsharedmemory/region/listed/status`)).status, 404);
      // Unregistering an unknown name is no error (Triton's).
      assert.equal(await unregister(server, 'listed'), 200);
    });

    it('registers with a JSON content type as well, and refuses an unknown field of the body', async () => {
      const key = await createObject(8);
      const typed = await postJson(`${server.url}/v2/systemsharedmemory/region/typed/register`, { key, byte_size: 8 });
      assert.equal(typed.status, 200, JSON.stringify(typed.body));
      const extra = await register(server, 'extra', { key, byte_size: 8, device_id: 0 });
      assert.equal(extra.status, 400);
      assert.match(extra.body.error, /device_id/);
      assert.equal(await unregister(server, 'typed'), 200);
    });
  });

  describe('gRPC', () => {
    it('registers, reads inputs and writes outputs (typed request): the bytes of a normal answer', async () => {
      const input = await createObject(32, [{ at: 0, bytes: f32(ROWS) }]);
      const output = await createObject(48);
      await client.unary('SystemSharedMemoryRegister', { name: 'g_in', key: input, byte_size: 32 });
      await client.unary('SystemSharedMemoryRegister', { name: 'g_out', key: output, offset: 8, byte_size: 40 });
      const status = await client.unary('SystemSharedMemoryStatus', { name: 'g_out' });
      assert.deepEqual(status.regions, { g_out: { name: 'g_out', key: output, offset: '8', byte_size: '40' } });

      const response = await client.infer({
        model_name: 'classifier',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 4], parameters: { shared_memory_region: { string_param: 'g_in' }, shared_memory_byte_size: { int64_param: 32 } } }],
        outputs: [
          { name: 'probabilities', parameters: { shared_memory_region: { string_param: 'g_out' }, shared_memory_byte_size: { int64_param: 24 } } },
          { name: 'label', parameters: { shared_memory_region: { string_param: 'g_out' }, shared_memory_byte_size: { int64_param: 16 }, shared_memory_offset: { int64_param: 24 } } },
        ],
      });

      assert.deepEqual(
        response.outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape, contents: o.contents })),
        [
          { name: 'probabilities', datatype: 'FP32', shape: ['2', '3'], contents: undefined },
          { name: 'label', datatype: 'INT64', shape: ['2'], contents: undefined },
        ],
      );
      const reference = await client.infer({ model_name: 'classifier', inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 4] }], raw_input_contents: [rawOf(Float32Array.from(ROWS))] });
      const written = await objectBytes(output);
      assert.deepEqual(written.subarray(8, 32), reference.raw_output_contents[0]);
      assert.deepEqual(written.subarray(32, 48), reference.raw_output_contents[1]);
      await client.unary('SystemSharedMemoryUnregister', { name: 'g_in' });
      await client.unary('SystemSharedMemoryUnregister', { name: 'g_out' });
      assert.equal((await client.unary('SystemSharedMemoryStatus', {})).regions.g_in, undefined);
    });

    it('gives raw_input_contents entries only to the inputs outside shared memory (tritonclient), BYTES in and out', async () => {
      const text = rawBytes(['héllo']);
      const input = await createObject(32, [{ at: 0, bytes: f32([1, 2, 3]) }, { at: 12, bytes: text }]);
      const output = await createObject(32);
      await client.unary('SystemSharedMemoryRegister', { name: 'gm_in', key: input, byte_size: 32 });
      await client.unary('SystemSharedMemoryRegister', { name: 'gm_out', key: output, byte_size: 32 });
      const request = (shared: boolean): ModelInferRequest => ({
        model_name: 'multi_io',
        inputs: [
          { name: 'features', datatype: 'FP32', shape: [1, 3], ...(shared ? { parameters: { shared_memory_region: { string_param: 'gm_in' }, shared_memory_byte_size: { int64_param: 12 } } } : {}) },
          { name: 'counts', datatype: 'INT64', shape: [1, 2] },
          { name: 'mask', datatype: 'BOOL', shape: [1, 3] },
          {
            name: 'text',
            datatype: 'BYTES',
            shape: [1, 1],
            ...(shared ? { parameters: { shared_memory_region: { string_param: 'gm_in' }, shared_memory_byte_size: { int64_param: text.length }, shared_memory_offset: { int64_param: 12 } } } : {}),
          },
        ],
        outputs: [{ name: 'text_echo', ...(shared ? { parameters: { shared_memory_region: { string_param: 'gm_out' }, shared_memory_byte_size: { int64_param: 32 } } } : {}) }, { name: 'total' }],
        raw_input_contents: shared ? [rawOf(BigInt64Array.of(4n, 5n)), Buffer.from([1, 0, 1])] : [rawOf(Float32Array.of(1, 2, 3)), rawOf(BigInt64Array.of(4n, 5n)), Buffer.from([1, 0, 1]), text],
      });

      const response = await client.infer(request(true));
      const reference = await client.infer(request(false));
      // The answer is raw (the request was): the output in shared memory has an empty entry, as in Triton.
      assert.deepEqual(response.raw_output_contents[0], Buffer.alloc(0));
      assert.deepEqual(response.raw_output_contents[1], reference.raw_output_contents[1]);
      assert.deepEqual(response.outputs[0]!.shape, ['1', '1']);
      assert.deepEqual((await objectBytes(output)).subarray(0, text.length), reference.raw_output_contents[0]);
      await client.unary('SystemSharedMemoryUnregister', {});
    });
  });

  describe('hostile requests get a 400 / INVALID_ARGUMENT naming the region', () => {
    let good: string;
    let small: string;

    before(async () => {
      good = await createObject(64, [{ at: 0, bytes: f32(ROWS) }]);
      small = await createObject(8);
      assert.equal((await register(server, 'h_in', { key: good, byte_size: 64 })).status, 200);
      assert.equal((await register(server, 'h_out', { key: small, byte_size: 8 })).status, 200);
    });

    after(async () => {
      await unregister(server);
    });

    const traversals = ['/../etc/passwd', '../etc/passwd', 'a/b', '/a/b', '..', '/..', '.', '/', '', '//x', 'x\u0000y', 'a\\b', '/proc/self/mem'];
    for (const key of traversals) {
      it(`refuses the key ${JSON.stringify(key)}`, async () => {
        const answer = await register(server, 'evil', { key, byte_size: 1 });
        assert.equal(answer.status, 400);
        assert.match(answer.body.error, /region 'evil'.*key/);
      });
    }

    it('refuses a symbolic link in /dev/shm, even to a real file, a directory and a missing object', async () => {
      const outside = await mkdtemp(join(tmpdir(), 'shm-target-'));
      await writeFile(join(outside, 'secret'), 'x'.repeat(64));
      await symlink(join(outside, 'secret'), join(SHM_DIR, `${PREFIX}-link`));
      await mkdir(join(SHM_DIR, `${PREFIX}-dir`));
      try {
        const link = await register(server, 'linked', { key: `/${PREFIX}-link`, byte_size: 8 });
        assert.equal(link.status, 400);
        assert.match(link.body.error, /region 'linked'.*symbolic link/);
        const dir = await register(server, 'dir', { key: `/${PREFIX}-dir`, byte_size: 8 });
        assert.equal(dir.status, 400);
        assert.match(dir.body.error, /region 'dir'.*directory/);
        const missing = await register(server, 'missing', { key: `/${PREFIX}-missing`, byte_size: 8 });
        assert.equal(missing.status, 400);
        assert.match(missing.body.error, /region 'missing'.*does not exist/);
        await rejectsWith(client.unary('SystemSharedMemoryRegister', { name: 'linked', key: `/${PREFIX}-link`, byte_size: 8 }), Status.INVALID_ARGUMENT, /'linked'.*symbolic link/);
      } finally {
        await rm(outside, { recursive: true, force: true });
      }
    });

    it('refuses a region past the end of its object, and a name registered twice', async () => {
      const past = await register(server, 'past', { key: good, offset: 60, byte_size: 8 });
      assert.equal(past.status, 400);
      assert.match(past.body.error, /region 'past'.*run past the 64 bytes/);
      const twice = await register(server, 'h_in', { key: good, byte_size: 8 });
      assert.equal(twice.status, 400);
      assert.match(twice.body.error, /'h_in' is already registered/);
      await rejectsWith(client.unary('SystemSharedMemoryRegister', { name: 'h_in', key: good, byte_size: 8 }), Status.ALREADY_EXISTS, /'h_in'/);
    });

    const input = (parameters: object, extra: object = {}) => ({ name: 'input', shape: [2, 4], datatype: 'FP32', parameters, ...extra });
    const cases: { name: string; request: object; message: RegExp }[] = [
      { name: 'an unknown region', request: { inputs: [input(shm('nowhere', 32))] }, message: /input 'input'.*region 'nowhere'/ },
      { name: 'a slice past the end of the region', request: { inputs: [input(shm('h_in', 32, 40))] }, message: /'h_in' has 64 bytes.*offset 40.*byte_size 32/ },
      { name: 'a byte size that is not shape × datatype', request: { inputs: [input(shm('h_in', 28))] }, message: /input 'input'.*region 'h_in'.*28 bytes, expected 32/ },
      { name: 'an output region too small for the output', request: { inputs: [input(shm('h_in', 32))], outputs: [{ name: 'probabilities', parameters: shm('h_out', 8) }] }, message: /output 'probabilities' has 24 bytes.*'h_out'/ },
      { name: 'an output slice past its region', request: { inputs: [input(shm('h_in', 32))], outputs: [{ name: 'label', parameters: shm('h_out', 16) }] }, message: /output 'label'.*'h_out' has 8 bytes/ },
      { name: 'data beside a region', request: { inputs: [input(shm('h_in', 32), { data: ROWS })] }, message: /'h_in'.*"data"/ },
      { name: 'a region without its byte size', request: { inputs: [input({ shared_memory_region: 'h_in' })] }, message: /input 'input'.*shared_memory_byte_size/ },
      { name: 'a negative offset', request: { inputs: [input(shm('h_in', 32, -8))] }, message: /input 'input'.*shared_memory_offset is -8/ },
      { name: 'binary data asked of an output in shared memory', request: { inputs: [input(shm('h_in', 32))], outputs: [{ name: 'label', parameters: { binary_data: true, ...shm('h_out', 8) } }] }, message: /output 'label'.*'h_out'.*binary_data/ },
      { name: 'a classification in shared memory', request: { inputs: [input(shm('h_in', 32))], outputs: [{ name: 'label', parameters: { classification: 2, ...shm('h_out', 8) } }] }, message: /output 'label'.*'h_out'.*classification/ },
      { name: 'an unknown input parameter', request: { inputs: [input({ ...shm('h_in', 32), shared_memory_stride: 4 })] }, message: /input 'input': parameter 'shared_memory_stride' is not supported/ },
      { name: 'an unknown output parameter', request: { inputs: [input(shm('h_in', 32))], outputs: [{ name: 'label', parameters: { compress: true } }] }, message: /output 'label': parameter 'compress' is not supported/ },
      { name: 'an unknown request parameter', request: { parameters: { sequence_id: 7 }, inputs: [input(shm('h_in', 32))] }, message: /the request: parameter 'sequence_id' is not supported/ },
    ];
    for (const { name, request, message } of cases) {
      it(`HTTP: refuses ${name}`, async () => {
        const answer = await infer(server, 'classifier', request);
        assert.equal(answer.status, 400, JSON.stringify(answer.json));
        assert.match(answer.json.error, message);
      });
    }

    const grpcInput = (parameters: NonNullable<InferInputTensor["parameters"]>): InferInputTensor => ({ name: 'input', datatype: 'FP32', shape: [2, 4], parameters });
    const region = (name: string, size: number, offset?: number): NonNullable<InferInputTensor["parameters"]> => ({
      shared_memory_region: { string_param: name },
      shared_memory_byte_size: { int64_param: size },
      ...(offset === undefined ? {} : { shared_memory_offset: { int64_param: offset } }),
    });
    const grpcCases: { name: string; request: ModelInferRequest; message: RegExp }[] = [
      { name: 'an unknown region', request: { model_name: 'classifier', inputs: [grpcInput(region('nowhere', 32))] }, message: /region 'nowhere'/ },
      { name: 'a slice past the end of the region', request: { model_name: 'classifier', inputs: [grpcInput(region('h_in', 32, 48))] }, message: /'h_in' has 64 bytes/ },
      { name: 'contents beside a region', request: { model_name: 'classifier', inputs: [{ ...grpcInput(region('h_in', 32)), contents: { fp32_contents: ROWS } }] }, message: /'h_in'.*contents/ },
      { name: 'an output region too small', request: { model_name: 'classifier', inputs: [grpcInput(region('h_in', 32))], outputs: [{ name: 'probabilities', parameters: region('h_out', 8) }] }, message: /output 'probabilities' has 24 bytes.*'h_out'/ },
      { name: 'an unknown input parameter', request: { model_name: 'classifier', inputs: [grpcInput({ ...region('h_in', 32), layout: { string_param: 'NCHW' } })] }, message: /parameter 'layout' is not supported/ },
      { name: 'an unknown request parameter', request: { model_name: 'classifier', parameters: { sequence_start: { bool_param: true } }, inputs: [grpcInput(region('h_in', 32))] }, message: /parameter 'sequence_start' is not supported/ },
    ];
    for (const { name, request, message } of grpcCases) {
      it(`gRPC: refuses ${name} (INVALID_ARGUMENT)`, async () => {
        await rejectsWith(client.infer(request), Status.INVALID_ARGUMENT, message);
      });
    }

    it('reads no more than MAX_REQUEST_BYTES from shared memory for one request (a sparse object may be huge)', async () => {
      const key = `/${PREFIX}-sparse`;
      await writeFile(join(SHM_DIR, key.slice(1)), '');
      await truncate(join(SHM_DIR, key.slice(1)), 2 ** 33); // 8 GiB, no memory used
      assert.equal((await register(server, 'sparse', { key, byte_size: 2 ** 33 })).status, 200);
      // A slice of 2 GiB for a shape the model takes: refused before a byte of it is read.
      const answer = await infer(server, 'classifier', { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', parameters: shm('sparse', 2 ** 31) }] });
      assert.equal(answer.status, 400);
      assert.match(answer.json.error, /input 'input'.*region 'sparse'.*MAX_REQUEST_BYTES/);
      assert.equal(await unregister(server, 'sparse'), 200);
    });

    it('refuses a region once it is unregistered, and serves on', async () => {
      const key = await createObject(32, [{ at: 0, bytes: f32(ROWS) }]);
      assert.equal((await register(server, 'brief', { key, byte_size: 32 })).status, 200);
      const request = { inputs: [input(shm('brief', 32))], outputs: [{ name: 'label' }] };
      assert.equal((await infer(server, 'classifier', request)).status, 200);
      assert.equal(await unregister(server, 'brief'), 200);
      const gone = await infer(server, 'classifier', request);
      assert.equal(gone.status, 400);
      assert.match(gone.json.error, /no system shared memory region 'brief' is registered/);
      assert.equal((await infer(server, 'classifier', { inputs: [input({}, { data: ROWS })], outputs: [{ name: 'label' }] })).json.outputs[0].data.length, 2);
    });
  });

  describe('descriptors', () => {
    it('holds one descriptor per region and closes it on unregister, over many rounds', async () => {
      await unregister(server);
      assert.equal(await heldDescriptors(), 0);
      const key = await createObject(32, [{ at: 0, bytes: f32(ROWS) }]);
      for (let round = 0; round < 40; round++) {
        assert.equal((await register(server, `round_${round}`, { key, byte_size: 32 })).status, 200);
        const answer = await infer(server, 'classifier', { inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', parameters: shm(`round_${round}`, 32) }], outputs: [{ name: 'label', parameters: shm(`round_${round}`, 16) }] });
        assert.equal(answer.status, 200, JSON.stringify(answer.json));
        if (round % 2 === 0) assert.equal(await unregister(server, `round_${round}`), 200);
        else await client.unary('SystemSharedMemoryUnregister', { name: `round_${round}` });
      }
      assert.equal(await heldDescriptors(), 0);
      for (let i = 0; i < 5; i++) await register(server, `held_${i}`, { key, byte_size: 32 });
      assert.equal(await heldDescriptors(), 5);
      assert.equal(await unregister(server), 200);
      assert.equal(await heldDescriptors(), 0);
    });

    it('refuses registering past SHARED_MEMORY_MAX_REGIONS and releases every region at shutdown', async () => {
      const limited = await startTestServer(await makeRepository([{ name: 'classifier', onnx: classifierModel() }]), {
        ALLOW_CLIENT_SHM: 'true',
        SHARED_MEMORY_MAX_REGIONS: '3',
        SHARED_MEMORY_MAX_BYTES: '64',
      });
      try {
        const key = await createObject(64);
        for (const name of ['a', 'b', 'c']) assert.equal((await register(limited, name, { key, byte_size: 8 })).status, 200);
        const fourth = await register(limited, 'd', { key, byte_size: 8 });
        assert.equal(fourth.status, 400);
        assert.match(fourth.body.error, /'d'.*SHARED_MEMORY_MAX_REGIONS/);
        assert.equal(await unregister(limited, 'c'), 200);
        const tooBig = await register(limited, 'big', { key, byte_size: 64 });
        assert.equal(tooBig.status, 400);
        assert.match(tooBig.body.error, /'big'.*SHARED_MEMORY_MAX_BYTES/);
        assert.equal(await heldDescriptors(), 2);
      } finally {
        await limited.close();
      }
      assert.equal(await heldDescriptors(), 0);
    });
  });

  describe('CUDA shared memory', () => {
    it('is not supported: register is 501 / UNIMPLEMENTED, status and unregister report no region', async () => {
      assert.deepEqual((await getJson(`${server.url}/v2/cudasharedmemory/status`)).body, []);
      assert.equal((await getJson(`${server.url}/v2/cudasharedmemory/region/gpu/status`)).status, 404);
      const registered = await postJson(`${server.url}/v2/cudasharedmemory/region/gpu/register`, { raw_handle: { b64: 'AA==' }, device_id: 0, byte_size: 8 });
      assert.equal(registered.status, 501);
      assert.match(registered.body.error, /'gpu'.*CUDA shared memory/);
      assert.equal((await fetch(`${server.url}/v2/cudasharedmemory/unregister`, { method: 'POST' })).status, 200);
      await rejectsWith(client.unary('CudaSharedMemoryRegister', { name: 'gpu', byte_size: 8 }), Status.UNIMPLEMENTED, /CUDA shared memory/);
      assert.deepEqual((await client.unary('CudaSharedMemoryStatus', {})).regions, {});
      await client.unary('CudaSharedMemoryUnregister', {});
    });
  });
});

describe('system shared memory while ALLOW_CLIENT_SHM is off (the default)', { skip: !existsSync(SHM_DIR) && 'no /dev/shm on this host' }, () => {
  let server: TestServer;
  let client: InferenceClient;

  before(async () => {
    server = await startTestServer(await makeRepository([{ name: 'classifier', onnx: classifierModel() }]));
    client = new InferenceClient(server.server.grpcAddress);
  });

  after(async () => {
    client?.close();
    await server?.close();
    await removeObjects();
  });

  it('answers status, and refuses register and unregister with 501 / UNIMPLEMENTED naming the switch', async () => {
    assert.deepEqual((await getJson(`${server.url}/v2/systemsharedmemory/status`)).body, []);
    const key = await createObject(32);
    const refused = await register(server, 'off', { key, byte_size: 32 });
    assert.equal(refused.status, 501);
    assert.match(refused.body.error, /ALLOW_CLIENT_SHM=true/);
    assert.equal(await unregister(server), 501);
    assert.equal((await fetch(`${server.url}/v2/cudasharedmemory/unregister`, { method: 'POST' })).status, 501);
    await rejectsWith(client.unary('SystemSharedMemoryRegister', { name: 'off', key, byte_size: 32 }), Status.UNIMPLEMENTED, /ALLOW_CLIENT_SHM/);
    assert.equal(await heldDescriptors(), 0);
  });

  it('refuses an inference naming a region, saying why', async () => {
    const answer = await infer(server, 'classifier', { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', parameters: shm('off', 16) }] });
    assert.equal(answer.status, 400);
    assert.match(answer.json.error, /region 'off'.*disabled/);
  });
});
