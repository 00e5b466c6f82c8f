import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DENSENET_CLASSES } from '../../scripts/build-models.js';
import { InferenceClient, outputOf, rawBytes, rawOf, Status, type ModelInferRequest, type ServiceError } from '../support/grpc-client.js';
import { getJson, startTestServer, type TestServer } from '../support/test-server.js';
import { difference, INPUT0, MINUS_ONES, ONES, sum, tritonExamplesRepository } from '../support/triton-examples.js';
import { bytesElements, int32Bytes, tritonInfer, tritonOutput } from '../support/triton-http-wire.js';

/**
 * NVIDIA Triton's own client examples (triton-inference-server/client, src/python/examples), replayed
 * on the wire against the stand-ins of Triton's example models (`build-models.js --triton-examples`):
 * the requests each program sends (shapes, parameters, headers, content types, tensor forms) and what
 * it checks in the answers. More of them (readiness, wording, compression, raw answers to typed gRPC
 * requests, classification, input formats, the repository extension as the examples use it, shared
 * memory) are in triton-examples-more.e2e.test.ts.
 * scripts/run-triton-examples.sh runs the Python programs themselves, by hand.
 */


describe("Triton's client examples against the stand-in models", () => {
  let server: TestServer;
  let url: string;
  let grpcAddress: string;

  before(async () => {
    server = await startTestServer(await tritonExamplesRepository(), { STRICT_READINESS: 'false' });
    url = server.url;
    grpcAddress = server.server.grpcAddress;
  });
  after(() => server.close());

  describe('over HTTP (tritonclient.http)', () => {
    it('simple_http_health_metadata: live with query parameters, model ready, model metadata and config, 404 for an unknown model', async () => {
      assert.equal((await fetch(`${url}/v2/health/live?test_1=1&test_2=2`)).status, 200);
      assert.equal((await fetch(`${url}/v2/models/simple/ready`)).status, 200);
      const metadata = await getJson(`${url}/v2/models/simple?test_1=1&test_2=2`);
      assert.equal(metadata.status, 200);
      assert.equal(metadata.body.name, 'simple');
      assert.deepEqual(metadata.body.versions, ['1']);
      assert.equal(metadata.body.platform, 'onnxruntime_onnx');
      assert.deepEqual(metadata.body.inputs, [
        { name: 'INPUT0', datatype: 'INT32', shape: [-1, 16] },
        { name: 'INPUT1', datatype: 'INT32', shape: [-1, 16] },
      ]);
      assert.deepEqual(metadata.body.outputs, [
        { name: 'OUTPUT0', datatype: 'INT32', shape: [-1, 16] },
        { name: 'OUTPUT1', datatype: 'INT32', shape: [-1, 16] },
      ]);
      const config = await getJson(`${url}/v2/models/simple/config`);
      assert.equal(config.body.name, 'simple');
      assert.equal(config.body.max_batch_size, 8);
      const unknown = await getJson(`${url}/v2/models/wrong_model_name`);
      assert.equal(unknown.status, 404);
      assert.equal(typeof unknown.body.error, 'string');
    });

    it('simple_http_infer_client: INPUT0 as JSON, INPUT1 binary, OUTPUT0 asked binary and OUTPUT1 JSON, with query parameters', async () => {
      const answer = await tritonInfer(
        url,
        'simple',
        {
          inputs: [
            { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: INPUT0 },
            { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], binary: int32Bytes(MINUS_ONES) },
          ],
          outputs: [
            { name: 'OUTPUT0', binaryData: true },
            { name: 'OUTPUT1', binaryData: false },
          ],
        },
        { query: { test_1: 1, test_2: 2 } },
      );
      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      assert.equal(answer.headers.get('content-type'), 'application/octet-stream');
      const output0 = tritonOutput(answer, 'OUTPUT0');
      assert.deepEqual([output0.form, output0.datatype, output0.shape], ['binary', 'INT32', [1, 16]]);
      assert.deepEqual(output0.values, sum(INPUT0, MINUS_ONES));
      const output1 = tritonOutput(answer, 'OUTPUT1');
      assert.deepEqual([output1.form, output1.datatype, output1.shape], ['json', 'INT32', [1, 16]]);
      assert.deepEqual(output1.values, difference(INPUT0, MINUS_ONES));

      // get_inference_statistics(model_name="simple"): exactly one model_stats entry.
      const statistics = await getJson(`${url}/v2/models/simple/stats`);
      assert.equal(statistics.status, 200);
      assert.equal(statistics.body.model_stats.length, 1);
      assert.ok(Number(statistics.body.model_stats[0].inference_count) >= 1);
    });

    it('simple_http_infer_client without requested outputs: binary_data_output answers every output in binary', async () => {
      const answer = await tritonInfer(
        url,
        'simple',
        {
          inputs: [
            { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: INPUT0 },
            { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], binary: int32Bytes(MINUS_ONES) },
          ],
        },
        { query: { test_1: 1, test_2: 2 } },
      );
      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      assert.deepEqual(tritonOutput(answer, 'OUTPUT0'), { form: 'binary', datatype: 'INT32', shape: [1, 16], values: sum(INPUT0, MINUS_ONES) });
      assert.deepEqual(tritonOutput(answer, 'OUTPUT1'), { form: 'binary', datatype: 'INT32', shape: [1, 16], values: difference(INPUT0, MINUS_ONES) });
    });

    it('simple_http_async_infer_client / simple_http_aio_infer_client: concurrent binary requests, each answered with its own sums', async () => {
      const requests = Array.from({ length: 6 }, (_, k) => {
        const input0 = INPUT0.map((x) => x * (k + 1));
        return tritonInfer(url, 'simple', {
          inputs: [
            { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], binary: int32Bytes(input0) },
            { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], binary: int32Bytes(ONES) },
          ],
          outputs: k % 2 === 0 ? [{ name: 'OUTPUT0' }, { name: 'OUTPUT1' }] : undefined,
        }).then((answer) => ({ answer, input0 }));
      });
      for (const { answer, input0 } of await Promise.all(requests)) {
        assert.equal(answer.status, 200, JSON.stringify(answer.json));
        assert.deepEqual(tritonOutput(answer, 'OUTPUT0').values, sum(input0, ONES));
        assert.deepEqual(tritonOutput(answer, 'OUTPUT1').values, difference(input0, ONES));
      }
    });

    it('simple_http_string_infer_client (simple_identity): text BYTES come back unchanged, in binary and in JSON', async () => {
      const text = new Array<string>(16).fill('hello');
      const binary = await tritonInfer(url, 'simple_identity', {
        inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [1, 16], binary: bytesElements(text) }],
        outputs: [{ name: 'OUTPUT0', binaryData: true }],
      });
      assert.equal(binary.status, 200, JSON.stringify(binary.json));
      assert.deepEqual(tritonOutput(binary, 'OUTPUT0'), { form: 'binary', datatype: 'BYTES', shape: [1, 16], values: text });
      const json = await tritonInfer(url, 'simple_identity', {
        inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [1, 16], data: text }],
        outputs: [{ name: 'OUTPUT0', binaryData: false }],
      });
      assert.equal(json.status, 200, JSON.stringify(json.json));
      assert.deepEqual(tritonOutput(json, 'OUTPUT0'), { form: 'json', datatype: 'BYTES', shape: [1, 16], values: text });
    });

    it('memory_growth_test (HTTP): custom_identity_int32 answers [1, 16] INT32 unchanged, request after request', async () => {
      for (let i = 0; i < 20; i++) {
        const answer = await tritonInfer(url, 'custom_identity_int32', {
          inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16], binary: int32Bytes(INPUT0) }],
          outputs: [{ name: 'OUTPUT0' }],
        });
        assert.equal(answer.status, 200, JSON.stringify(answer.json));
        assert.deepEqual(tritonOutput(answer, 'OUTPUT0'), { form: 'binary', datatype: 'INT32', shape: [1, 16], values: INPUT0 });
      }
    });

    it('image_client (HTTP): densenet_onnx has one FP32 input of 3 dimensions and one FP32 vector output, without batching', async () => {
      const metadata = await getJson(`${url}/v2/models/densenet_onnx`);
      assert.deepEqual(metadata.body.inputs, [{ name: 'data_0', datatype: 'FP32', shape: [3, 224, 224] }]);
      assert.deepEqual(metadata.body.outputs, [{ name: 'fc6_1', datatype: 'FP32', shape: [DENSENET_CLASSES] }]);
      const config = await getJson(`${url}/v2/models/densenet_onnx/config`);
      assert.equal(config.body.max_batch_size, 0);
      assert.equal(config.body.input.length, 1);
    });
  });

  describe('over gRPC (tritonclient.grpc)', () => {
    let client: InferenceClient;
    before(() => {
      client = new InferenceClient(grpcAddress);
    });
    after(() => client.close());

    /** What InferInput.set_data_from_numpy sends for the two INT32 inputs of `simple`: raw contents. */
    const simpleRaw = (input0: readonly number[], input1: readonly number[], outputs = true): ModelInferRequest => ({
      model_name: 'simple',
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16] },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] },
      ],
      ...(outputs && { outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT1' }] }),
      raw_input_contents: [rawOf(Int32Array.from(input0)), rawOf(Int32Array.from(input1))],
    });

    const assertSimpleAnswer = (response: Awaited<ReturnType<InferenceClient['infer']>>, input0: readonly number[], input1: readonly number[]) => {
      const output0 = outputOf(response, 'OUTPUT0');
      assert.equal(output0.form, 'raw');
      assert.deepEqual(output0.tensor.shape, ['1', '16']);
      assert.deepEqual(output0.values, sum(input0, input1));
      assert.deepEqual(outputOf(response, 'OUTPUT1').values, difference(input0, input1));
    };

    it('simple_grpc_health_metadata: live with custom metadata, model ready, model metadata and config, NOT_FOUND for an unknown model', async () => {
      const headers = { metadata: { test: '1', dummy: '2' } };
      assert.deepEqual(await client.unary('ServerLive', {}, headers), { live: true });
      assert.deepEqual(await client.unary('ModelReady', { name: 'simple', version: '' }), { ready: true });
      const metadata = await client.unary('ModelMetadata', { name: 'simple', version: '' }, headers);
      assert.equal(metadata.name, 'simple');
      assert.deepEqual(metadata.inputs.map((t) => [t.name, t.datatype, t.shape]), [
        ['INPUT0', 'INT32', ['-1', '16']],
        ['INPUT1', 'INT32', ['-1', '16']],
      ]);
      const config = await client.unary('ModelConfig', { name: 'simple', version: '' });
      assert.equal(config.config.name, 'simple');
      await assert.rejects(client.unary('ModelMetadata', { name: 'wrong_model_name', version: '' }), (error: ServiceError) => {
        assert.equal(error.code, Status.NOT_FOUND);
        return true;
      });
    });

    it('simple_grpc_infer_client: raw inputs with requested outputs and a `test` header; raw outputs; one model_stats entry', async () => {
      const response = await client.infer(simpleRaw(INPUT0, ONES), { metadata: { test: '1' } });
      assertSimpleAnswer(response, INPUT0, ONES);
      const statistics = await client.unary('ModelStatistics', { name: 'simple', version: '' });
      assert.equal(statistics.model_stats.length, 1);
    });

    it('simple_grpc_infer_client without requested outputs: every output, raw', async () => {
      assertSimpleAnswer(await client.infer(simpleRaw(INPUT0, ONES, false)), INPUT0, ONES);
    });

    it('simple_grpc_infer_client -C gzip: a channel compressing its messages with gzip', async () => {
      const gzipClient = new InferenceClient(grpcAddress, { 'grpc.default_compression_algorithm': 2 });
      try {
        assertSimpleAnswer(await gzipClient.infer(simpleRaw(INPUT0, ONES)), INPUT0, ONES);
      } finally {
        gzipClient.close();
      }
    });

    it("simple_grpc_keepalive_client: a channel with the example's keepalive options", async () => {
      const keepaliveClient = new InferenceClient(grpcAddress, {
        'grpc.keepalive_time_ms': 2 ** 31 - 1,
        'grpc.keepalive_timeout_ms': 20000,
        'grpc.keepalive_permit_without_calls': 0,
        'grpc.http2.max_pings_without_data': 2,
      });
      try {
        assertSimpleAnswer(await keepaliveClient.infer(simpleRaw(INPUT0, ONES), { metadata: { test: '1' } }), INPUT0, ONES);
      } finally {
        keepaliveClient.close();
      }
    });

    it('simple_grpc_async_infer_client / simple_grpc_aio_infer_client: concurrent calls, each with its own answer', async () => {
      const inputs = Array.from({ length: 6 }, (_, k) => INPUT0.map((x) => x * (k + 2)));
      const responses = await Promise.all(inputs.map((input0) => client.infer(simpleRaw(input0, ONES))));
      responses.forEach((response, k) => assertSimpleAnswer(response, inputs[k]!, ONES));
    });

    it('simple_grpc_string_infer_client (simple_identity): raw BYTES come back unchanged', async () => {
      const text = new Array<string>(16).fill('hello');
      const response = await client.infer({
        model_name: 'simple_identity',
        inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [1, 16] }],
        outputs: [{ name: 'OUTPUT0' }],
        raw_input_contents: [rawBytes(text)],
      });
      const output = outputOf(response, 'OUTPUT0');
      assert.equal(output.form, 'raw');
      assert.deepEqual(output.values, text);
    });

    it('grpc_client: the raw stub against densenet_onnx, 602112 bytes of "a" as data_0, the request id echoed', async () => {
      assert.deepEqual(await client.unary('ServerLive', {}), { live: true });
      assert.deepEqual(await client.unary('ModelReady', { name: 'densenet_onnx', version: '' }), { ready: true });
      assert.ok((await client.unary('ServerMetadata', {})).name);
      assert.equal((await client.unary('ModelMetadata', { name: 'densenet_onnx', version: '' })).name, 'densenet_onnx');
      assert.equal((await client.unary('ModelConfig', { name: 'densenet_onnx', version: '' })).config.name, 'densenet_onnx');
      const response = await client.infer({
        model_name: 'densenet_onnx',
        model_version: '',
        id: 'my request id',
        inputs: [{ name: 'data_0', datatype: 'FP32', shape: [3, 224, 224] }],
        outputs: [{ name: 'fc6_1' }],
        raw_input_contents: [Buffer.alloc(602112, 'a')],
      });
      assert.equal(response.id, 'my request id');
      assert.deepEqual(response.outputs.map((o) => [o.name, o.datatype, o.shape]), [['fc6_1', 'FP32', [String(DENSENET_CLASSES)]]]);
      assert.equal(response.raw_output_contents[0]!.length, DENSENET_CLASSES * 4);
    });

    it('memory_growth_test (gRPC): a new client per request, custom_identity_int32 answering its input', async () => {
      for (let i = 0; i < 10; i++) {
        const fresh = new InferenceClient(grpcAddress);
        try {
          const response = await fresh.infer({
            model_name: 'custom_identity_int32',
            inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16] }],
            outputs: [{ name: 'OUTPUT0' }],
            raw_input_contents: [rawOf(Int32Array.from(INPUT0))],
          });
          const output = outputOf(response, 'OUTPUT0');
          assert.deepEqual([output.tensor.datatype, output.tensor.shape, output.values], ['INT32', ['1', '16'], INPUT0]);
        } finally {
          fresh.close();
        }
      }
    });

    it('grpc_explicit_int8_content_client (simple_int8): int_contents compute the INT8 sum and difference', async () => {
      const response = await client.infer({
        model_name: 'simple_int8',
        inputs: [
          { name: 'INPUT0', datatype: 'INT8', shape: [1, 16], contents: { int_contents: INPUT0 } },
          { name: 'INPUT1', datatype: 'INT8', shape: [1, 16], contents: { int_contents: ONES } },
        ],
        outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT1' }],
      });
      assert.deepEqual(outputOf(response, 'OUTPUT0').values, sum(INPUT0, ONES));
      assert.deepEqual(outputOf(response, 'OUTPUT1').values, difference(INPUT0, ONES));
    });

    it('image_client (gRPC): densenet_onnx metadata and config as parse_model reads them', async () => {
      const metadata = await client.unary('ModelMetadata', { name: 'densenet_onnx', version: '' });
      assert.deepEqual(metadata.inputs.map((t) => [t.name, t.datatype, t.shape]), [['data_0', 'FP32', ['3', '224', '224']]]);
      assert.deepEqual(metadata.outputs.map((t) => [t.name, t.datatype, t.shape]), [['fc6_1', 'FP32', [String(DENSENET_CLASSES)]]]);
      const { config } = await client.unary('ModelConfig', { name: 'densenet_onnx', version: '' });
      assert.equal(config.max_batch_size ?? 0, 0);
      assert.equal(config.input.length, 1);
    });
  });
});
