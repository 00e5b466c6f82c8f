import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLASSIFIER_PARAMETERS, classifierModel, staticShapeModel, tritonSimpleModel } from '../../scripts/build-models.js';
import { formatFloat } from '../../src/domain/inference/classification.js';
import {
  decodeRaw,
  decodeRawBytes,
  InferenceClient,
  rawOf,
  Status,
  type CallOptions,
  type InferParameter,
  type ModelInferRequest,
  type ModelInferResponse,
  type ModelStreamInferResponse,
  type ServiceError,
} from '../support/grpc-client.js';
import { identityModelOf } from '../support/identity-models.js';
import { bearer, getJson, makeRepository, postJson, requestJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * What Triton's own clients do, done here the way they do it: NVIDIA's example programs
 * (grpc_explicit_*_content_client, simple_*_model_control, image_client) and tritonclient's
 * streams. Each test sends what the program sends and reads the answer the way it reads it.
 */

const TOKEN = 'triton-clients-test-token-0123456789';
const ADMIN: CallOptions = { token: TOKEN };
const SAMPLES = [
  [6.7, 3.0, 5.2, 2.3],
  [5.1, 3.5, 1.4, 0.2],
];
const LABELS = ['setosa', 'versicolor', 'virginica'];

function softmaxClassifier(row: readonly number[]): number[] {
  const { weights, bias } = CLASSIFIER_PARAMETERS;
  const logits = bias.map((b, j) => b + row.reduce((sum, x, i) => sum + x * weights[i]![j]!, 0));
  const max = Math.max(...logits);
  const exps = logits.map((l) => Math.exp(l - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => Math.fround(e / total));
}

function rejectsWith(promise: Promise<unknown>, code: Status, details: RegExp): Promise<void> {
  return assert.rejects(promise, (error: ServiceError) => {
    assert.equal(error.code, code, `expected ${Status[code]}, got ${Status[error.code]}: ${error.details}`);
    assert.match(error.details, details);
    return true;
  });
}

/** numpy's frombuffer of a raw output. */
const fromBuffer = (raw: Buffer, ArrayType: Int32ArrayConstructor | Int8ArrayConstructor) => Array.from(new ArrayType(new Uint8Array(raw).buffer));

const INPUT0 = Array.from({ length: 16 }, (_, i) => i);
const INPUT1 = new Array<number>(16).fill(1);

describe("Triton's clients and NVIDIA's example programs", () => {
  let server: TestServer;
  let url: string;
  let repository: string;
  let client: InferenceClient;
  before(async () => {
    repository = await makeRepository([
      { name: 'simple', onnx: tritonSimpleModel('INT32'), config: { max_batch_size: 8 } },
      { name: 'simple_int8', onnx: tritonSimpleModel('INT8'), config: { max_batch_size: 8 } },
      { name: 'simple_string', onnx: tritonSimpleModel('BYTES'), config: { max_batch_size: 8 } },
      { name: 'classifier', onnx: classifierModel() },
      {
        name: 'labelled',
        onnx: classifierModel(),
        config: { output: [{ name: 'probabilities', data_type: 'TYPE_FP32', dims: [3], label_filename: 'iris_labels.txt' }] },
      },
      { name: 'static_shape', onnx: staticShapeModel() },
      { name: 'bytes', onnx: identityModelOf(['BYTES', 'BOOL']) },
      { name: 'no_labels', onnx: classifierModel(), config: { output: [{ name: 'probabilities', data_type: 'TYPE_FP32', dims: [3], label_filename: 'missing.txt' }] } },
      { name: 'escaping', onnx: classifierModel(), config: { output: [{ name: 'probabilities', data_type: 'TYPE_FP32', dims: [3], label_filename: '../labelled/iris_labels.txt' }] } },
    ]);
    // One label a line, a CRLF line among them; Triton reads labels from the model's directory.
    await writeFile(join(repository, 'labelled', 'iris_labels.txt'), `${LABELS[0]}\r\n${LABELS[1]}\n${LABELS[2]}\n`);
    server = await startTestServer(repository, { ADMIN_TOKEN: TOKEN, STRICT_READINESS: 'false' });
    url = server.url;
    client = new InferenceClient(server.server.grpcAddress);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  describe('grpc_explicit_*_content_client: typed contents in, raw_output_contents out', () => {
    const simpleRequest = (model: string, datatype: string, contents: object): ModelInferRequest => ({
      model_name: model,
      model_version: '',
      inputs: [
        { name: 'INPUT0', datatype, shape: [1, 16], contents: contents as never },
        { name: 'INPUT1', datatype, shape: [1, 16], contents: (datatype === 'BYTES' ? { bytes_contents: INPUT1.map((v) => Buffer.from(String(v))) } : { int_contents: INPUT1 }) as never },
      ],
      outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT1' }],
    });

    it('grpc_explicit_int_content_client: INT32 sums and differences, read with np.frombuffer(raw_output_contents[i], int32)', async () => {
      const request = simpleRequest('simple', 'INT32', { int_contents: INPUT0 });
      const response = await client.infer(request);
      assert.deepEqual(response.outputs.map((o) => [o.name, o.datatype, o.shape]), [['OUTPUT0', 'INT32', ['1', '16']], ['OUTPUT1', 'INT32', ['1', '16']]]);
      assert.equal(response.raw_output_contents.length, 2, 'the example indexes raw_output_contents by output');
      assert.deepEqual(fromBuffer(response.raw_output_contents[0]!, Int32Array), INPUT0.map((v, i) => v + INPUT1[i]!));
      assert.deepEqual(fromBuffer(response.raw_output_contents[1]!, Int32Array), INPUT0.map((v, i) => v - INPUT1[i]!));

      // "Populating additional content field should generate an error": one raw entry, and contents too.
      const mixed: ModelInferRequest = { ...request, raw_input_contents: [rawOf(Int32Array.from(INPUT0.slice(0, 8)))] };
      mixed.inputs[0] = { ...mixed.inputs[0]!, contents: { int_contents: INPUT0.slice(8) } };
      await rejectsWith(
        client.infer(mixed),
        Status.INVALID_ARGUMENT,
        /contents field must not be specified when using raw_input_contents for 'INPUT0' for model 'simple'/,
      );
    });

    it('grpc_explicit_int8_content_client: INT8 read with np.frombuffer(raw_output_contents[i], int8)', async () => {
      const response = await client.infer(simpleRequest('simple_int8', 'INT8', { int_contents: INPUT0 }));
      assert.deepEqual(fromBuffer(response.raw_output_contents[0]!, Int8Array), INPUT0.map((v, i) => v + INPUT1[i]!));
      assert.deepEqual(fromBuffer(response.raw_output_contents[1]!, Int8Array), INPUT0.map((v, i) => v - INPUT1[i]!));
    });

    it('grpc_explicit_byte_content_client: BYTES read with deserialize_bytes_tensor(raw_output_contents[i])', async () => {
      const response = await client.infer(simpleRequest('simple_string', 'BYTES', { bytes_contents: INPUT0.map((v) => Buffer.from(String(v))) }));
      assert.deepEqual(response.outputs.map((o) => o.datatype), ['BYTES', 'BYTES']);
      assert.deepEqual(decodeRawBytes(response.raw_output_contents[0]!).map((b) => Number(String(b))), INPUT0.map((v) => v + 1));
      assert.deepEqual(decodeRawBytes(response.raw_output_contents[1]!).map((b) => Number(String(b))), INPUT0.map((v) => v - 1));
    });

    it('answers typed contents only when the request parameter binary_data_output is false', async () => {
      const typed = await client.infer({ ...simpleRequest('simple', 'INT32', { int_contents: INPUT0 }), parameters: { binary_data_output: { bool_param: false } } });
      assert.deepEqual(typed.raw_output_contents, []);
      assert.deepEqual(typed.outputs[0]!.contents?.int_contents, INPUT0.map((v) => v + 1));
    });
  });

  describe('simple_grpc_model_control / simple_http_model_control: a config override in protobuf JSON', () => {
    const maxBatchSize = async () => (await client.unary('ModelConfig', { name: 'simple' })).config.max_batch_size;
    const load = (config: string) => client.unary('RepositoryModelLoad', { model_name: 'simple', parameters: { config: { string_param: config } } }, ADMIN);

    it('refuses a config that is not JSON with "failed to load", and takes {"max_batch_size":"16"}', async () => {
      await rejectsWith(load('"parameters": {"config": {{"max_batch_size": "16"}}}'), Status.INVALID_ARGUMENT, /failed to load 'simple'/);
      assert.equal(await maxBatchSize(), 8);
      await load('{"max_batch_size":"16"}');
      assert.equal(await maxBatchSize(), 16);
      // The same over HTTP, as simple_http_model_control sends it.
      const http = await requestJson('POST', `${url}/v2/repository/models/simple/load`, {
        headers: bearer(TOKEN),
        body: { parameters: { config: '{"max_batch_size":"4","dynamic_batching":{"max_queue_delay_microseconds":"100"}}' } },
      });
      assert.equal(http.status, 200, JSON.stringify(http.body));
      const config = await getJson(`${url}/v2/models/simple/config`);
      assert.equal(config.body.max_batch_size, 4);
      assert.equal(config.body.dynamic_batching.max_queue_delay_microseconds, 100);
    });

    it("takes back the configuration ModelConfig answered, in protobuf's JSON form (64-bit integers as strings, defaults left out)", async () => {
      const { config } = await client.unary('ModelConfig', { name: 'labelled' });
      const json = JSON.stringify(protobufJson(config));
      assert.match(json, /"dims":\["3"\]/, 'int64 dims are decimal strings');
      assert.doesNotMatch(json, /"gpus"|"preferred_batch_size"|"KIND_AUTO"|"REJECT"/, 'empty and default fields are left out');
      await client.unary('RepositoryModelLoad', { model_name: 'labelled', parameters: { config: { string_param: json } } }, ADMIN);
      assert.deepEqual((await client.unary('ModelConfig', { name: 'labelled' })).config, config);
    });
  });

  describe('ModelStreamInfer: triton_final_response', () => {
    const finalFlag = (response: ModelInferResponse | undefined) => response?.parameters?.triton_final_response;

    it('marks every answer final, the answers of failed requests included', async () => {
      const stream = client.stream();
      const good = (id: string): ModelInferRequest => ({
        id,
        model_name: 'simple',
        inputs: ['INPUT0', 'INPUT1'].map((name) => ({ name, datatype: 'INT32', shape: [1, 16], contents: { int_contents: INPUT0 } })),
      });
      stream.write(good('ok-1'));
      stream.write({ ...good('unknown-model'), model_name: 'nope' });
      stream.write({ ...good('bad-shape'), inputs: good('').inputs.map((input) => ({ ...input, shape: [2, 8] })) });
      stream.write({ ...good('bad-classification'), outputs: [{ name: 'OUTPUT0', parameters: { classification: { int64_param: 0 } } }] });
      stream.write(good('ok-2'));
      stream.end();
      const answers: Record<string, ModelStreamInferResponse> = Object.fromEntries((await stream.finished).map((answer) => [answer.infer_response?.id ?? '', answer]));
      assert.deepEqual(Object.keys(answers).sort(), ['bad-classification', 'bad-shape', 'ok-1', 'ok-2', 'unknown-model']);
      for (const [id, answer] of Object.entries(answers)) {
        assert.deepEqual(finalFlag(answer.infer_response), { bool_param: true, parameter_choice: 'bool_param' }, id);
        assert.equal((answer.error_message ?? '') === '', id.startsWith('ok'), `${id}: ${answer.error_message}`);
      }
      assert.ok(answers['ok-1']!.infer_response!.raw_output_contents.length === 2, 'stream answers are raw too');
    });

    it('does not add the mark to a unary ModelInfer answer (Triton does not)', async () => {
      const response = await client.infer({
        model_name: 'simple',
        inputs: ['INPUT0', 'INPUT1'].map((name) => ({ name, datatype: 'INT32', shape: [1, 16], contents: { int_contents: INPUT0 } })),
      });
      assert.equal(finalFlag(response), undefined);
    });
  });

  describe('the classification extension', () => {
    const classification = (k: number | string): InferParameter => (typeof k === 'number' ? { int64_param: k } : { string_param: k });
    const classifyRequest = (model: string, k: number | string | InferParameter, rows = SAMPLES): ModelInferRequest => ({
      model_name: model,
      inputs: [{ name: 'input', datatype: 'FP32', shape: [rows.length, 4], contents: { fp32_contents: rows.flat() } }],
      outputs: [{ name: 'probabilities', parameters: { classification: typeof k === 'object' ? k : classification(k) } }, { name: 'label' }],
    });
    /** What Triton answers for the top-k of a row: "<value>:<index>[:<label>]", the value as C's %f. */
    const expectedClasses = (row: readonly number[], k: number, labels?: readonly string[]) =>
      softmaxClassifier(row)
        .map((value, index) => ({ value, index }))
        .sort((a, b) => b.value - a.value)
        .slice(0, k)
        .map(({ value, index }) => `${formatFloat(value)}:${index}${labels ? `:${labels[index]}` : ''}`);

    it('is listed in the server metadata, over HTTP and gRPC', async () => {
      assert.ok((await getJson(`${url}/v2`)).body.extensions.includes('classification'));
      assert.ok((await client.unary('ServerMetadata', {})).extensions.includes('classification'));
    });

    it('gRPC: answers the top-k classes of each row as a BYTES tensor [batch, k], with the labels of the label file', async () => {
      for (const [model, labels] of [['classifier', undefined], ['labelled', LABELS]] as const) {
        const response = await client.infer(classifyRequest(model, 2));
        const [probabilities, label] = response.outputs;
        assert.deepEqual([probabilities!.name, probabilities!.datatype, probabilities!.shape], ['probabilities', 'BYTES', ['2', '2']]);
        const classes = decodeRawBytes(response.raw_output_contents[0]!).map(String);
        assert.deepEqual(classes, SAMPLES.flatMap((row) => expectedClasses(row, 2, labels)), model);
        // image_client parses each as "value:index[:label]".
        assert.match(classes[0]!, labels ? /^\d\.\d{6}:2:virginica$/ : /^\d\.\d{6}:2$/);
        assert.deepEqual([label!.datatype, decodeRaw('INT64', response.raw_output_contents[1]!)], ['INT64', [2n, 0n]], 'the other output is untouched');
      }
    });

    it('gRPC: answers at most the classes there are; a model without batching ranks its whole output: shape [k]', async () => {
      const all = await client.infer(classifyRequest('labelled', 10, [SAMPLES[0]!]));
      assert.deepEqual(all.outputs[0]!.shape, ['1', '3']);
      assert.deepEqual(decodeRawBytes(all.raw_output_contents[0]!).map(String), expectedClasses(SAMPLES[0]!, 3, LABELS));
      const flat = await client.infer({
        model_name: 'static_shape',
        inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3], contents: { fp32_contents: [0.5, 4, -1, 2.25, 7, 3] } }],
        outputs: [{ name: 'y', parameters: { classification: { int64_param: 2 } } }],
      });
      assert.deepEqual(flat.outputs[0]!.shape, ['2']);
      assert.deepEqual(decodeRawBytes(flat.raw_output_contents[0]!).map(String), ['8.000000:4', '5.000000:1']);
    });

    it('gRPC: typed answers carry the classes in bytes_contents; streams classify too', async () => {
      const typed = await client.infer({ ...classifyRequest('classifier', 1), parameters: { binary_data_output: { bool_param: false } } });
      assert.deepEqual(typed.outputs[0]!.contents?.bytes_contents.map(String), SAMPLES.flatMap((row) => expectedClasses(row, 1)));
      const stream = client.stream();
      stream.write({ ...classifyRequest('labelled', 1), id: 's' });
      stream.end();
      const [answer] = await stream.finished;
      assert.deepEqual(decodeRawBytes(answer!.infer_response!.raw_output_contents[0]!).map(String), SAMPLES.flatMap((row) => expectedClasses(row, 1, LABELS)));
    });

    it('HTTP: {"classification": k} on a requested output, in JSON and as binary data', async () => {
      const body = (k: unknown, binary = false) => ({
        inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: SAMPLES }],
        outputs: [{ name: 'probabilities', parameters: { classification: k, ...(binary && { binary_data: true }) } }],
      });
      const json = await postJson(`${url}/v2/models/labelled/infer`, body(3));
      assert.equal(json.status, 200, JSON.stringify(json.body));
      assert.deepEqual(json.body.outputs, [
        { name: 'probabilities', datatype: 'BYTES', shape: [2, 3], data: SAMPLES.flatMap((row) => expectedClasses(row, 3, LABELS)) },
      ]);
      const response = await fetch(`${url}/v2/models/classifier/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body(2, true)) });
      assert.equal(response.status, 200);
      const bytes = Buffer.from(await response.arrayBuffer());
      const jsonLength = Number(response.headers.get('inference-header-content-length'));
      const header = JSON.parse(bytes.subarray(0, jsonLength).toString('utf8'));
      assert.deepEqual([header.outputs[0].datatype, header.outputs[0].shape], ['BYTES', [2, 2]]);
      assert.deepEqual(decodeRawBytes(bytes.subarray(jsonLength)).map(String), SAMPLES.flatMap((row) => expectedClasses(row, 2)));
    });

    it('refuses a count that is not a positive integer, and an output that is not numeric, naming the output (400 / INVALID_ARGUMENT)', async () => {
      const httpCases: [string, unknown, RegExp][] = [
        ['probabilities', 0, /output 'probabilities': parameter 'classification' is 0, expected a positive integer/],
        ['probabilities', -3, /output 'probabilities': parameter 'classification' is -3/],
        ['probabilities', 1.5, /output 'probabilities': parameter 'classification' is 1.5/],
        ['probabilities', '2', /output 'probabilities': parameter 'classification' is "2"/],
        ['probabilities', true, /output 'probabilities': parameter 'classification' is true/],
      ];
      for (const [output, k, message] of httpCases) {
        const answer = await postJson(`${url}/v2/models/classifier/infer`, {
          inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: SAMPLES[0] }],
          outputs: [{ name: output, parameters: { classification: k } }],
        });
        assert.equal(answer.status, 400, `${JSON.stringify(k)}: ${JSON.stringify(answer.body)}`);
        assert.match(answer.body.error, message);
      }
      await rejectsWith(client.infer(classifyRequest('classifier', 0)), Status.INVALID_ARGUMENT, /output 'probabilities': parameter 'classification' is 0/);
      await rejectsWith(client.infer(classifyRequest('classifier', -1)), Status.INVALID_ARGUMENT, /output 'probabilities': parameter 'classification' is -1/);
      await rejectsWith(client.infer(classifyRequest('classifier', '2')), Status.INVALID_ARGUMENT, /output 'probabilities': parameter 'classification' is "2"/);
      await rejectsWith(client.infer(classifyRequest('classifier', { double_param: 2.5 })), Status.INVALID_ARGUMENT, /parameter 'classification' is 2.5/);
      const bytes = await postJson(`${url}/v2/models/bytes/infer`, {
        inputs: [
          { name: 'in_bytes', shape: [1, 2], datatype: 'BYTES', data: ['a', 'b'] },
          { name: 'in_bool', shape: [1, 2], datatype: 'BOOL', data: [true, false] },
        ],
        outputs: [{ name: 'out_bool', parameters: { classification: 1 } }],
      });
      assert.equal(bytes.status, 400);
      assert.match(bytes.body.error, /output 'out_bool' is BOOL: classification needs a numeric output/);
      // And the server goes on serving.
      assert.equal((await client.infer(classifyRequest('classifier', 1))).outputs[0]!.datatype, 'BYTES');
    });

    it('reports label_filename in the configuration, over HTTP and gRPC', async () => {
      assert.equal((await getJson(`${url}/v2/models/labelled/config`)).body.output[0].label_filename, 'iris_labels.txt');
      assert.equal((await client.unary('ModelConfig', { name: 'labelled' })).config.output[0].label_filename, 'iris_labels.txt');
    });

    it('leaves a model whose label file is missing or outside its directory UNAVAILABLE, saying why', async () => {
      const index = (await client.unary('RepositoryIndex', {}, ADMIN)).models;
      const reason = (name: string) => index.find((model) => model.name === name)?.reason ?? '';
      assert.equal(index.find((model) => model.name === 'no_labels')?.state, 'UNAVAILABLE');
      assert.match(reason('no_labels'), /label file 'missing\.txt' cannot be read/);
      assert.ok(!reason('no_labels').includes(repository), `no server path in: ${reason('no_labels')}`);
      assert.equal(index.find((model) => model.name === 'escaping')?.state, 'UNAVAILABLE');
      assert.match(reason('escaping'), /label file '\.\.\/labelled\/iris_labels\.txt' is outside the model directory/);
    });
  });
});

/** ModelConfig's 64-bit fields (decimal strings), its map fields, and the names of its enums' zero values. */
const INT64_FIELDS = new Set(['dims', 'versions', 'max_queue_delay_microseconds', 'default_timeout_microseconds']);
const MAP_FIELDS = new Set(['parameters', 'priority_queue_policy']);
const ENUM_ZEROS = new Set(['TYPE_INVALID', 'KIND_AUTO', 'REJECT']);

/**
 * A ModelConfig message as protobuf's JSON printer writes it (MessageToJson with the proto field
 * names, as tritonclient's get_model_config(as_json=True) does): 64-bit integers stay decimal
 * strings, enums names; what holds its default (empty list or map, false, 0, '', "0" of a 64-bit
 * field, an enum's zero) is left out; proto-loader's oneof group names are not fields.
 */
function protobufJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(protobufJson);
  if (value === null || typeof value !== 'object') return value;
  const isDefault = (key: string, field: unknown) =>
    (Array.isArray(field) && field.length === 0) ||
    field === false ||
    field === 0 ||
    field === '' ||
    (INT64_FIELDS.has(key) && field === '0') ||
    (typeof field === 'string' && ENUM_ZEROS.has(field)) ||
    (MAP_FIELDS.has(key) && Object.keys(field as object).length === 0);
  const fields = Object.entries(value).filter(([key, field]) => key !== 'policy_choice' && key !== 'scheduling_choice' && !isDefault(key, field));
  return Object.fromEntries(fields.map(([key, field]) => [key, protobufJson(field)]));
}
