import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync, inflateSync, deflateSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { TRITON_EXAMPLE_CONFIGS } from '../../scripts/build-models.js';
import { decodeRawBytes, InferenceClient, outputOf, rawBytes, rawOf, Status, type ServiceError } from '../support/grpc-client.js';
import { getJson, startTestServer, type TestServer } from '../support/test-server.js';
import { difference, INPUT0, MINUS_ONES, ONES, sum, tritonExamplesRepository } from '../support/triton-examples.js';
import { bytesElements, int32Bytes, readTritonAnswer, tritonInfer, tritonInferBody, tritonOutput } from '../support/triton-http-wire.js';

/**
 * More checks NVIDIA Triton's client examples make, beside triton-examples.e2e.test.ts: readiness
 * with every stand-in (no implicit warm-up to fail simple_string), Triton's wording ("Request for
 * unknown model", "failed to load"), HTTP request and response compression, raw answers to typed
 * gRPC requests, the input `format`, `label_filename` and classification (image clients), the
 * repository extension as the examples call it (bodies without a content type, protobuf-JSON config
 * overrides; the examples send no admin token: these tests send one, as a tritonclient plugin
 * would), and system shared memory (with CUDA shared-memory unregister, which every shm example
 * calls first). The documented differences are asserted as such: the server's name, and model files
 * in a load's parameters (refused). NUL bytes in BYTES are refused (hostile-input tests).
 */

const TOKEN = 'triton-examples-admin-token';
const bearer = { authorization: `Bearer ${TOKEN}` };

/** `rejects` with the status `code` and details matching `details`. */
function rejectsWith(promise: Promise<unknown>, code: Status, details: RegExp): Promise<void> {
  return assert.rejects(promise, (error: ServiceError) => {
    assert.equal(error.code, code, `expected ${Status[code]}, got ${Status[error.code]}: ${error.details}`);
    assert.match(error.details, details);
    return true;
  });
}

/** A POST with a Buffer body, so that, like tritonclient.http (geventhttpclient), no content type is sent. */
async function postBare(url: string, body: string | undefined, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const response = await fetch(url, { method: 'POST', headers, body: body === undefined ? undefined : Buffer.from(body) });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: kept as text, for the assertion message
  }
  return { status: response.status, body: parsed };
}

describe("Triton's client examples: readiness, wording, compression, strings, raw answers, shared memory", () => {
  let server: TestServer;
  let url: string;
  let client: InferenceClient;

  before(async () => {
    server = await startTestServer(await tritonExamplesRepository(), { ADMIN_TOKEN: TOKEN, ALLOW_CLIENT_SHM: 'true' });
    url = server.url;
    client = new InferenceClient(server.server.grpcAddress);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  describe('readiness with every stand-in (implicit warm-up must not fail simple_string)', () => {
    it('simple_http_health_metadata / simple_grpc_health_metadata: the server is ready, and so is every model', async () => {
      assert.equal((await fetch(`${url}/v2/health/ready`)).status, 200);
      assert.deepEqual(await client.unary('ServerReady', {}), { ready: true });
      for (const model of Object.keys(TRITON_EXAMPLE_CONFIGS)) {
        assert.equal((await fetch(`${url}/v2/models/${model}/ready`)).status, 200, model);
      }
    });
  });

  describe("Triton's name and wording", () => {
    it('simple_http_health_metadata / simple_grpc_health_metadata: the server metadata names this server, not `triton` (a documented difference the examples check)', async () => {
      assert.equal((await getJson(`${url}/v2`)).body.name, 'onnx-serving');
      assert.equal((await client.unary('ServerMetadata', {})).name, 'onnx-serving');
    });

    it('simple_http_infer_client / simple_http_aio_infer_client: an unknown model is "Request for unknown model..."', async () => {
      const answer = await tritonInfer(url, 'wrong_model_name', {
        inputs: [
          { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: INPUT0 },
          { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], binary: int32Bytes(MINUS_ONES) },
        ],
        outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT1', binaryData: false }],
      });
      assert.equal(answer.status, 404);
      assert.match(answer.json.error, /^Request for unknown model/);
    });

    it('simple_http_health_metadata / simple_grpc_health_metadata: model metadata of an unknown model says "Request for unknown model"', async () => {
      const http = await getJson(`${url}/v2/models/wrong_model_name`);
      assert.match(http.body.error, /Request for unknown model/);
      await rejectsWith(client.unary('ModelMetadata', { name: 'wrong_model_name', version: '' }), Status.NOT_FOUND, /Request for unknown model/);
    });
  });

  describe('HTTP compression (simple_http_infer_client --request/--response-compression-algorithm)', () => {
    for (const [algorithm, compress, decompress] of [
      ['gzip', gzipSync, gunzipSync],
      ['deflate', deflateSync, inflateSync],
    ] as const) {
      it(`${algorithm}: a compressed request body, and an answer the client can decompress`, async () => {
        const { body, headers } = tritonInferBody({
          inputs: [
            { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: INPUT0 },
            { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], binary: int32Bytes(MINUS_ONES) },
          ],
          outputs: [
            { name: 'OUTPUT0', binaryData: true },
            { name: 'OUTPUT1', binaryData: false },
          ],
        });
        const response = await fetch(`${url}/v2/models/simple/infer?test_1=1&test_2=2`, {
          method: 'POST',
          headers: { ...headers, 'content-encoding': algorithm, 'accept-encoding': algorithm },
          body: compress(body),
        });
        const raw = Buffer.from(await response.arrayBuffer());
        // Node's fetch decodes gzip/deflate answers itself; tritonclient does it by Content-Encoding.
        const plain = response.headers.get('content-encoding') === algorithm && raw[0] !== 0x7b ? decompress(raw) : raw;
        const answer = readTritonAnswer(response.status, response.headers, plain);
        assert.equal(answer.status, 200, JSON.stringify(answer.json));
        assert.deepEqual(tritonOutput(answer, 'OUTPUT0').values, sum(INPUT0, MINUS_ONES));
        assert.deepEqual(tritonOutput(answer, 'OUTPUT1').values, difference(INPUT0, MINUS_ONES));
      });
    }
  });

  describe('simple_string (simple_http_string_infer_client, simple_grpc_string_infer_client, grpc_explicit_byte_content_client)', () => {
    const decimal = (values: readonly number[]) => values.map(String);

    it('HTTP: INPUT0 binary, INPUT1 JSON; OUTPUT0 binary, OUTPUT1 JSON; sums and differences as decimal strings', async () => {
      const answer = await tritonInfer(url, 'simple_string', {
        inputs: [
          { name: 'INPUT0', datatype: 'BYTES', shape: [1, 16], binary: bytesElements(decimal(INPUT0)) },
          { name: 'INPUT1', datatype: 'BYTES', shape: [1, 16], data: decimal(ONES) },
        ],
        outputs: [
          { name: 'OUTPUT0', binaryData: true },
          { name: 'OUTPUT1', binaryData: false },
        ],
      });
      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      assert.deepEqual(tritonOutput(answer, 'OUTPUT0').values, decimal(sum(INPUT0, ONES)));
      assert.deepEqual(tritonOutput(answer, 'OUTPUT1').values, decimal(difference(INPUT0, ONES)));
    });

    it('gRPC: raw BYTES in, raw BYTES out', async () => {
      const response = await client.infer({
        model_name: 'simple_string',
        inputs: [
          { name: 'INPUT0', datatype: 'BYTES', shape: [1, 16] },
          { name: 'INPUT1', datatype: 'BYTES', shape: [1, 16] },
        ],
        outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT1' }],
        raw_input_contents: [rawBytes(decimal(INPUT0)), rawBytes(decimal(ONES))],
      });
      assert.deepEqual(outputOf(response, 'OUTPUT0').values, decimal(sum(INPUT0, ONES)));
      assert.deepEqual(outputOf(response, 'OUTPUT1').values, decimal(difference(INPUT0, ONES)));
    });

    it('grpc_explicit_byte_content_client: bytes_contents in, raw_output_contents out', async () => {
      const response = await client.infer({
        model_name: 'simple_string',
        model_version: '',
        inputs: [
          { name: 'INPUT0', datatype: 'BYTES', shape: [1, 16], contents: { bytes_contents: decimal(INPUT0).map((s) => Buffer.from(s)) } },
          { name: 'INPUT1', datatype: 'BYTES', shape: [1, 16], contents: { bytes_contents: decimal(ONES).map((s) => Buffer.from(s)) } },
        ],
        outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT1' }],
      });
      assert.equal(response.raw_output_contents.length, 2, 'the example reads raw_output_contents[0] and [1]');
      assert.deepEqual(decodeRawBytes(response.raw_output_contents[0]!).map(String), decimal(sum(INPUT0, ONES)));
      assert.deepEqual(decodeRawBytes(response.raw_output_contents[1]!).map(String), decimal(difference(INPUT0, ONES)));
    });
  });

  describe('raw_output_contents for typed requests (grpc_explicit_int_content_client, grpc_explicit_int8_content_client)', () => {
    for (const [model, ArrayType] of [
      ['simple', Int32Array],
      ['simple_int8', Int8Array],
    ] as const) {
      it(`${model}: int_contents in, raw_output_contents[0] and [1] out`, async () => {
        const datatype = model === 'simple' ? 'INT32' : 'INT8';
        const response = await client.infer({
          model_name: model,
          model_version: '',
          inputs: [
            { name: 'INPUT0', datatype, shape: [1, 16], contents: { int_contents: INPUT0 } },
            { name: 'INPUT1', datatype, shape: [1, 16], contents: { int_contents: ONES } },
          ],
          outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT1' }],
        });
        assert.equal(response.raw_output_contents.length, 2);
        const values = (raw: Buffer) => Array.from(new ArrayType(new Uint8Array(raw).buffer));
        assert.deepEqual(values(response.raw_output_contents[0]!), sum(INPUT0, ONES));
        assert.deepEqual(values(response.raw_output_contents[1]!), difference(INPUT0, ONES));
      });
    }
  });

  describe('system shared memory (simple_http_shm_client, simple_grpc_shm_client, reuse_infer_objects_client)', () => {
    const BYTE_SIZE = 64;
    const shmFile = (key: string) => join('/dev/shm', key.replace(/^\//, ''));

    it('HTTP: unregister all (system and CUDA), register two regions, infer from and into them, status, unregister', async () => {
      const keys = { input: '/input_simple_onnx_serving_http', output: '/output_simple_onnx_serving_http' };
      await writeFile(shmFile(keys.input), Buffer.concat([int32Bytes(INPUT0), int32Bytes(ONES)]));
      await writeFile(shmFile(keys.output), Buffer.alloc(2 * BYTE_SIZE));
      try {
        assert.equal((await postBare(`${url}/v2/systemsharedmemory/unregister`, undefined)).status, 200);
        assert.equal((await postBare(`${url}/v2/cudasharedmemory/unregister`, undefined)).status, 200);
        for (const [name, key] of [['output_data', keys.output], ['input_data', keys.input]]) {
          const registered = await postBare(`${url}/v2/systemsharedmemory/region/${name}/register`, JSON.stringify({ key, offset: 0, byte_size: 2 * BYTE_SIZE }));
          assert.equal(registered.status, 200, JSON.stringify(registered.body));
        }
        const request = {
          inputs: [
            { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', parameters: { shared_memory_region: 'input_data', shared_memory_byte_size: BYTE_SIZE } },
            { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', parameters: { shared_memory_region: 'input_data', shared_memory_byte_size: BYTE_SIZE, shared_memory_offset: BYTE_SIZE } },
          ],
          outputs: [
            { name: 'OUTPUT0', parameters: { binary_data: false, shared_memory_region: 'output_data', shared_memory_byte_size: BYTE_SIZE } },
            { name: 'OUTPUT1', parameters: { binary_data: false, shared_memory_region: 'output_data', shared_memory_byte_size: BYTE_SIZE, shared_memory_offset: BYTE_SIZE } },
          ],
        };
        const answer = await postBare(`${url}/v2/models/simple/infer`, JSON.stringify(request));
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        // Triton's form for an output written to shared memory: name, datatype and shape, no data, no parameters.
        assert.deepEqual(answer.body.outputs, [
          { name: 'OUTPUT0', datatype: 'INT32', shape: [1, 16] },
          { name: 'OUTPUT1', datatype: 'INT32', shape: [1, 16] },
        ]);
        const written = await readFile(shmFile(keys.output));
        assert.deepEqual(Array.from(new Int32Array(new Uint8Array(written).buffer)), [...sum(INPUT0, ONES), ...difference(INPUT0, ONES)]);
        const status = await getJson(`${url}/v2/systemsharedmemory/status`);
        assert.deepEqual(status.body.map((r: { name: string }) => r.name).sort(), ['input_data', 'output_data']);
        assert.equal((await postBare(`${url}/v2/systemsharedmemory/unregister`, undefined)).status, 200);
        assert.deepEqual((await getJson(`${url}/v2/systemsharedmemory/status`)).body, []);
      } finally {
        await rm(shmFile(keys.input), { force: true });
        await rm(shmFile(keys.output), { force: true });
      }
    });

    it('gRPC: the same through SystemSharedMemory* and CudaSharedMemoryUnregister, shared_memory_* as tensor parameters', async () => {
      const keys = { input: '/input_simple_onnx_serving_grpc', output: '/output_simple_onnx_serving_grpc' };
      await writeFile(shmFile(keys.input), Buffer.concat([int32Bytes(INPUT0), int32Bytes(ONES)]));
      await writeFile(shmFile(keys.output), Buffer.alloc(2 * BYTE_SIZE));
      // Triton's shared-memory methods, by name: the typed test client lists only the methods served today.
      const call = (method: string, request: object) => client.unary(method as 'ServerLive', request as never);
      try {
        await call('SystemSharedMemoryUnregister', { name: '' });
        await call('CudaSharedMemoryUnregister', { name: '' });
        await call('SystemSharedMemoryRegister', { name: 'output_data', key: keys.output, offset: 0, byte_size: 2 * BYTE_SIZE });
        await call('SystemSharedMemoryRegister', { name: 'input_data', key: keys.input, offset: 0, byte_size: 2 * BYTE_SIZE });
        const region = (name: string, offset?: number) => ({
          shared_memory_region: { string_param: name },
          shared_memory_byte_size: { int64_param: BYTE_SIZE },
          ...(offset !== undefined && { shared_memory_offset: { int64_param: offset } }),
        });
        const response = await client.infer({
          model_name: 'simple',
          inputs: [
            { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], parameters: region('input_data') },
            { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], parameters: region('input_data', BYTE_SIZE) },
          ],
          outputs: [
            { name: 'OUTPUT0', parameters: region('output_data') },
            { name: 'OUTPUT1', parameters: region('output_data', BYTE_SIZE) },
          ],
        });
        assert.deepEqual(response.outputs.map((o) => o.name), ['OUTPUT0', 'OUTPUT1']);
        const written = await readFile(shmFile(keys.output));
        assert.deepEqual(Array.from(new Int32Array(new Uint8Array(written).buffer)), [...sum(INPUT0, ONES), ...difference(INPUT0, ONES)]);
        const status = (await call('SystemSharedMemoryStatus', { name: '' })) as unknown as { regions: Record<string, unknown> };
        assert.deepEqual(Object.keys(status.regions).sort(), ['input_data', 'output_data']);
        await call('SystemSharedMemoryUnregister', { name: '' });
      } finally {
        await rm(shmFile(keys.input), { force: true });
        await rm(shmFile(keys.output), { force: true });
      }
    });
  });
});

describe("Triton's model-control examples (simple_http_model_control, simple_grpc_model_control)", () => {
  let server: TestServer;
  let url: string;
  let repository: string;
  let client: InferenceClient;

  before(async () => {
    repository = await tritonExamplesRepository();
    // Triton's CI runs simple_http_model_control.py on a repository of 7 models (and the gRPC one on 8).
    await mkdir(join(repository, 'padding_model_7'));
    server = await startTestServer(repository, { ADMIN_TOKEN: TOKEN, STRICT_READINESS: 'false' });
    url = server.url;
    client = new InferenceClient(server.server.grpcAddress);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  it('HTTP: index of 7, load, a malformed override "failed to load", a protobuf-JSON override, unload, an unknown model "failed to load"', async () => {
    const index = await postBare(`${url}/v2/repository/index`, undefined, bearer);
    assert.equal(index.status, 200);
    assert.equal(index.body.length, 7);
    const load = (model: string, body: object) => postBare(`${url}/v2/repository/models/${model}/load`, JSON.stringify(body), bearer);
    const loaded = await load('simple', {});
    assert.equal(loaded.status, 200, JSON.stringify(loaded.body));
    assert.equal((await fetch(`${url}/v2/models/simple/ready`)).status, 200);
    const malformed = await load('simple', { parameters: { config: '"parameters": {"config": {{"max_batch_size": "16"}}}' } });
    assert.notEqual(malformed.status, 200);
    assert.match(malformed.body.error, /failed to load/);
    const override = await load('simple', { parameters: { config: '{"max_batch_size":"16"}' } });
    assert.equal(override.status, 200, JSON.stringify(override.body));
    assert.equal((await getJson(`${url}/v2/models/simple/config`)).body.max_batch_size, 16);
    const unloaded = await postBare(`${url}/v2/repository/models/simple/unload`, JSON.stringify({ parameters: { unload_dependents: false } }), bearer);
    assert.equal(unloaded.status, 200, JSON.stringify(unloaded.body));
    assert.notEqual((await fetch(`${url}/v2/models/simple/ready`)).status, 200);
    const unknown = await load('wrong_model_name', {});
    assert.notEqual(unknown.status, 200);
    assert.match(unknown.body.error, /failed to load/);
  });

  it('gRPC: index of 8, load, override errors and a protobuf-JSON override, unload, a file parameter refused, an unknown model "failed to load"', async () => {
    await mkdir(join(repository, 'padding_model_8'));
    const admin = { token: TOKEN };
    assert.equal((await client.unary('RepositoryIndex', {}, admin)).models.length, 8);
    await client.unary('RepositoryModelLoad', { model_name: 'simple' }, admin);
    assert.deepEqual(await client.unary('ModelReady', { name: 'simple' }), { ready: true });
    const config = (text: string) => ({ config: { string_param: text } });
    // The example checks only the message of the error, not its status.
    await assert.rejects(client.unary('RepositoryModelLoad', { model_name: 'simple', parameters: config('"parameters": {"config": {{"max_batch_size": "16"}}}') }, admin), (error: ServiceError) => {
      assert.match(error.details, /failed to load/);
      return true;
    });
    await client.unary('RepositoryModelLoad', { model_name: 'simple', parameters: config('{"max_batch_size":"16"}') }, admin);
    assert.equal((await client.unary('ModelConfig', { name: 'simple' })).config.max_batch_size, 16);
    await client.unary('RepositoryModelUnload', { model_name: 'simple' }, admin);
    assert.deepEqual(await client.unary('ModelReady', { name: 'simple' }), { ready: false });
    // Model files in a load's parameters are not supported (uploads have their own call): refused,
    // naming the parameter, where Triton answers INTERNAL (its own TODO says INVALID_ARGUMENT).
    await rejectsWith(
      client.unary('RepositoryModelLoad', { model_name: 'simple', parameters: { ...config('{}'), [`file:${'A'.repeat(256)}`]: { bytes_param: Buffer.from('a') } } }, admin),
      Status.INVALID_ARGUMENT,
      /failed to load 'simple', parameters\.file:A+ is not supported/,
    );
    assert.deepEqual(await client.unary('ServerLive', {}), { live: true });
    await assert.rejects(client.unary('RepositoryModelLoad', { model_name: 'wrong_model_name' }, admin), (error: ServiceError) => {
      assert.match(error.details, /failed to load/);
      return true;
    });
  });
});

describe("Triton's image examples (image_client, grpc_image_client): densenet_onnx with FORMAT_NCHW, labels, classification", () => {
  let server: TestServer;
  let url: string;
  let client: InferenceClient;

  before(async () => {
    server = await startTestServer(await tritonExamplesRepository(), { STRICT_READINESS: 'false' });
    url = server.url;
    client = new InferenceClient(server.server.grpcAddress);
  });
  after(async () => {
    client.close();
    await server.close();
  });

    const image = rawOf(Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => ((i * 7919) % 255) / 127.5 - 1));
  const CLASSIFICATION = /^(-?[\d.]+(?:e[-+]?\d+)?):(\d+):CLASS_(\d+)$/;

  /** The class the plain fc6_1 scores rank first. */
  async function topClass(): Promise<number> {
    const plain = await client.infer({ model_name: 'densenet_onnx', inputs: [{ name: 'data_0', datatype: 'FP32', shape: [3, 224, 224] }], raw_input_contents: [image] });
    const scores = outputOf(plain, 'fc6_1').values as number[];
    return scores.indexOf(Math.max(...scores));
  }

  function assertClassification(elements: readonly string[], top: number): void {
    assert.equal(elements.length, 3);
    const parsed = elements.map((element) => {
      const match = CLASSIFICATION.exec(element);
      assert.ok(match, `"${element}" is not score:index:label`);
      assert.equal(match[2], match[3], 'the label is the line of its index');
      return { score: Number(match[1]), index: Number(match[2]) };
    });
    assert.equal(parsed[0]!.index, top);
    assert.ok(parsed[0]!.score >= parsed[1]!.score && parsed[1]!.score >= parsed[2]!.score, 'best first');
  }

  it('the config reports the input format FORMAT_NCHW over HTTP and gRPC', async () => {
    assert.equal((await getJson(`${url}/v2/models/densenet_onnx/config`)).body.input[0].format, 'FORMAT_NCHW');
    assert.equal((await client.unary('ModelConfig', { name: 'densenet_onnx', version: '' })).config.input[0].format, 'FORMAT_NCHW');
  });

  it('HTTP: class_count 3 answers the 3 best classes as BYTES "score:index:label", binary', async () => {
    const answer = await tritonInfer(url, 'densenet_onnx', {
      inputs: [{ name: 'data_0', datatype: 'FP32', shape: [3, 224, 224], binary: image }],
      outputs: [{ name: 'fc6_1', classCount: 3 }],
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.json));
    const output = tritonOutput(answer, 'fc6_1');
    assert.equal(output.datatype, 'BYTES');
    assertClassification(output.values as string[], await topClass());
  });

  it('gRPC: the output parameter classification (int64_param 3) answers the same, raw', async () => {
    const response = await client.infer({
      model_name: 'densenet_onnx',
      inputs: [{ name: 'data_0', datatype: 'FP32', shape: [3, 224, 224] }],
      outputs: [{ name: 'fc6_1', parameters: { classification: { int64_param: 3 } } }],
      raw_input_contents: [image],
    });
    const output = outputOf(response, 'fc6_1');
    assert.equal(output.tensor.datatype, 'BYTES');
    assertClassification(output.values as string[], await topClass());
  });
});
