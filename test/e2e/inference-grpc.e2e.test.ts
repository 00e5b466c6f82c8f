import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CLASSIFIER_PARAMETERS, classifierModel, identityAllTypesModel, multiIoModel } from '../../scripts/build-models.js';
import {
  decodeRaw,
  InferenceClient,
  outputOf,
  rawBytes,
  rawOf,
  Status,
  type InferInputTensor,
  type ModelInferRequest,
  type ModelInferResponse,
  type ServiceError,
  type TensorContents,
} from '../support/grpc-client.js';
import { identityModelOf } from '../support/identity-models.js';
import { getJson, makeRepository, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * The KServe V2 gRPC service end to end, next to its HTTP twin on the same server: every method,
 * tensors of every datatype in both forms, BYTES rules, errors with their status codes, streams and
 * message sizes. The queue (deadlines, cancels, a full queue, completion order) is in
 * grpc-queue.e2e.test.ts; the repository extension and readiness in grpc-admin.e2e.test.ts.
 */

const SAMPLE = [6.7, 3.0, 5.2, 2.3]; // the classifier answers label 2
const OTHER_SAMPLE = [5.1, 3.5, 1.4, 0.2]; // label 0

function softmaxClassifier(row: readonly number[]): number[] {
  const { weights, bias } = CLASSIFIER_PARAMETERS;
  const logits = bias.map((b, j) => b + row.reduce((sum, x, i) => sum + x * weights[i]![j]!, 0));
  const max = Math.max(...logits);
  const exps = logits.map((l) => Math.exp(l - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

const classifierInput = (rows: readonly (readonly number[])[], overrides: Partial<InferInputTensor> = {}): InferInputTensor => ({
  name: 'input',
  datatype: 'FP32',
  shape: [rows.length, 4],
  contents: { fp32_contents: rows.flat() },
  ...overrides,
});

/** The request parameter that asks for typed contents in the answer (Triton answers raw_output_contents). */
const TYPED_ANSWER = { binary_data_output: { bool_param: false } } as const;

const classify = (rows: readonly (readonly number[])[] = [SAMPLE], model = 'classifier'): ModelInferRequest => ({ model_name: model, inputs: [classifierInput(rows)] });

const classifyRaw = (rows: readonly (readonly number[])[] = [SAMPLE], model = 'classifier'): ModelInferRequest => ({
  model_name: model,
  inputs: [{ name: 'input', datatype: 'FP32', shape: [rows.length, 4] }],
  raw_input_contents: [rawOf(Float32Array.from(rows.flat()))],
});

/** Asserts that `promise` rejects with the status `code` and details matching `details`. */
function rejectsWith(promise: Promise<unknown>, code: Status, details: RegExp): Promise<void> {
  return assert.rejects(promise, (error: ServiceError) => {
    assert.equal(error.code, code, `expected ${Status[code]}, got ${Status[error.code]}: ${error.details}`);
    assert.match(error.details, details);
    return true;
  });
}

// ---- every datatype -------------------------------------------------------------------------

/** Five elements of each datatype, boundaries included; 64-bit integers as exact decimal strings. */
const VALUES = {
  BOOL: [true, false, false, true, true],
  UINT8: [0, 255, 1, 128, 254],
  UINT16: [0, 65535, 1, 256, 32768],
  UINT32: [0, 4294967295, 1, 65536, 2147483648],
  UINT64: ['0', '18446744073709551615', '1', '9007199254740993', '9223372036854775808'],
  INT8: [-128, 127, 0, -1, 1],
  INT16: [-32768, 32767, 0, -1, 1],
  INT32: [-2147483648, 2147483647, 0, -1, 1],
  INT64: ['-9223372036854775808', '9223372036854775807', '0', '-1', '-9007199254740993'],
  FP32: [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 2 ** -149], // 2^-149: the smallest float32 subnormal
  FP64: [5e-324, 2.2250738585072014e-308, -1.7976931348623157e308, 0.1, Number.NaN],
  BYTES: ['', 'héllo', '日本語', '🎉 party', 'e\u0301'],
} as const;
type TypedDatatype = keyof typeof VALUES;
const TYPED_DATATYPES = Object.keys(VALUES) as TypedDatatype[];
/** FP16 travels only raw: the bits of 1.5, -65504 (the lowest), +Infinity, the smallest subnormal, -0. */
const FP16_BITS = [0x3e00, 0xfbff, 0x7c00, 0x0001, 0x8000];
const N = 5;

const CONTENTS_FIELD: Record<TypedDatatype, keyof TensorContents> = {
  BOOL: 'bool_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
};

function typedContents(datatype: TypedDatatype): TensorContents {
  const values = VALUES[datatype] as readonly unknown[];
  return { [CONTENTS_FIELD[datatype]]: datatype === 'BYTES' ? values.map((v) => Buffer.from(v as string, 'utf8')) : [...values] };
}

function rawContents(datatype: TypedDatatype | 'FP16'): Buffer {
  switch (datatype) {
    case 'FP16':
      return rawOf(Uint16Array.from(FP16_BITS));
    case 'BYTES':
      return rawBytes(VALUES.BYTES);
    case 'BOOL':
      return rawOf(Uint8Array.from(VALUES.BOOL, Number));
    case 'UINT64':
      return rawOf(BigUint64Array.from(VALUES.UINT64, BigInt));
    case 'INT64':
      return rawOf(BigInt64Array.from(VALUES.INT64, BigInt));
    default: {
      const ArrayType = { UINT8: Uint8Array, UINT16: Uint16Array, UINT32: Uint32Array, INT8: Int8Array, INT16: Int16Array, INT32: Int32Array, FP32: Float32Array, FP64: Float64Array }[datatype];
      return rawOf(ArrayType.from(VALUES[datatype] as readonly number[]));
    }
  }
}

const tensorName = (prefix: 'in' | 'out', datatype: string) => `${prefix}_${datatype.toLowerCase()}`;

function typedRequest(model: string, datatypes: readonly TypedDatatype[], parameters?: ModelInferRequest['parameters']): ModelInferRequest {
  return {
    model_name: model,
    parameters,
    inputs: datatypes.map((datatype) => ({ name: tensorName('in', datatype), datatype, shape: [1, N], contents: typedContents(datatype) })),
  };
}

function rawRequest(model: string, datatypes: readonly (TypedDatatype | 'FP16')[], parameters?: ModelInferRequest['parameters']): ModelInferRequest {
  return {
    model_name: model,
    parameters,
    inputs: datatypes.map((datatype) => ({ name: tensorName('in', datatype), datatype, shape: [1, N] })),
    raw_input_contents: datatypes.map(rawContents),
  };
}

/** The elements each output must hold, as `outputOf` gives them in each form. */
function expectedValues(datatype: TypedDatatype | 'FP16', form: 'typed' | 'raw'): unknown[] {
  if (datatype === 'FP16') return FP16_BITS;
  const values = [...(VALUES[datatype] as readonly unknown[])];
  if (datatype === 'INT64' || datatype === 'UINT64') return form === 'raw' ? values.map((v) => BigInt(v as string)) : values;
  return values;
}

/** Asserts the answer is wholly in `form` and each output echoes its input exactly. */
function assertEchoes(response: ModelInferResponse, datatypes: readonly (TypedDatatype | 'FP16')[], form: 'typed' | 'raw'): void {
  assert.deepEqual(response.outputs.map((o) => o.name).sort(), datatypes.map((d) => tensorName('out', d)).sort());
  if (form === 'raw') {
    assert.equal(response.raw_output_contents.length, response.outputs.length, 'one raw entry per output');
    for (const output of response.outputs) assert.equal(output.contents, undefined, `${output.name} has no typed contents in a raw answer`);
  } else {
    assert.deepEqual(response.raw_output_contents, [], 'no raw contents in a typed answer');
  }
  for (const datatype of datatypes) {
    const { tensor, values } = outputOf(response, tensorName('out', datatype));
    assert.equal(tensor.datatype, datatype);
    assert.deepEqual(tensor.shape, ['1', String(N)]);
    const actual = datatype === 'BYTES' && form === 'typed' ? (values as Buffer[]).map((b) => b.toString('utf8')) : values;
    assert.deepEqual(actual, expectedValues(datatype, form), `${datatype} (${form})`);
  }
}

// ---- comparing with HTTP --------------------------------------------------------------------

/** The int64 fields of ModelConfig (decimal strings over gRPC, numbers in HTTP's JSON). */
const CONFIG_INT64_FIELDS = new Set(['dims', 'shape', 'versions', 'max_queue_delay_microseconds', 'default_timeout_microseconds']);
/** proto-loader's names of a set oneof field (`oneofs: true`): not fields of the message. */
const ONEOF_GROUPS = new Set(['scheduling_choice', 'policy_choice', 'input_data_type']);

/**
 * A ModelConfig message in the JSON form of `GET .../config`: int64 fields as numbers, without the
 * oneof group names; empty repeated fields are left out on both sides, as protobuf cannot tell an
 * empty list from an absent one.
 */
function configJson(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) {
    return value.map((element) => (CONFIG_INT64_FIELDS.has(key) ? Number(element) : configJson(element)));
  }
  if (typeof value === 'string' && CONFIG_INT64_FIELDS.has(key)) return Number(value);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([k, v]) => !ONEOF_GROUPS.has(k) && !(Array.isArray(v) && v.length === 0))
      .map(([k, v]) => [k, configJson(v, k)]),
  );
}

/** Statistics over gRPC (uint64 as decimal strings) in the JSON form of `GET .../stats`. */
function statisticsJson(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((element) => statisticsJson(element));
  if (typeof value === 'string') return key === 'name' || key === 'version' || key === 'type' ? value : Number(value);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, statisticsJson(v, k)]));
}

const count = (value: string | undefined) => Number(value ?? 0);

// ---- the suite ------------------------------------------------------------------------------

/** multi_io with a configuration that sets about every field the server reports. */
const CONFIGURED = {
  max_batch_size: 4,
  version_policy: { latest: { num_versions: 1 } },
  instance_group: [{ count: 2, kind: 'KIND_CPU' }],
  parameters: { intra_op_thread_count: { string_value: '1' } },
  dynamic_batching: {
    preferred_batch_size: [2, 4],
    max_queue_delay_microseconds: 500,
    priority_levels: 2,
    default_priority_level: 1,
    default_queue_policy: { timeout_action: 'DELAY', default_timeout_microseconds: 5_000_000, allow_timeout_override: false, max_queue_size: 8 },
    priority_queue_policy: { '2': { max_queue_size: 3 } },
  },
  // Run twice on each instance before the model serves: 2 rows of random features, zeros, and a string from a file.
  model_warmup: [
    {
      name: 'two rows',
      batch_size: 2,
      inputs: {
        features: { data_type: 'TYPE_FP32', dims: [3], random_data: true },
        counts: { data_type: 'TYPE_INT64', dims: [2], zero_data: true },
        mask: { data_type: 'TYPE_BOOL', dims: [3], random_data: true },
        text: { data_type: 'TYPE_STRING', dims: [1], input_data_file: 'text.bin' },
      },
      count: 2,
    },
  ],
};
/** The `text.bin` warm-up file: one BYTES element, its 4-byte little-endian length then its bytes. */
const WARMUP_TEXT = new Uint8Array([5, 0, 0, 0, ...Buffer.from('hello')]);

const ALL_BUT_FP16 = TYPED_DATATYPES;
const ALL_DATATYPES = [...TYPED_DATATYPES, 'FP16'] as const;

describe('KServe V2 over gRPC', () => {
  let server: TestServer;
  let url: string;
  let client: InferenceClient;
  before(async () => {
    const repository = await makeRepository([
      { name: 'classifier', onnx: classifierModel() },
      { name: 'counted', onnx: classifierModel() },
      { name: 'configured', onnx: multiIoModel(), config: CONFIGURED, warmup: { 'text.bin': WARMUP_TEXT } },
      { name: 'every_version', onnx: classifierModel(), config: { version_policy: { all: {} } } },
      { name: 'pinned', version: 1, onnx: classifierModel(), config: { version_policy: { specific: { versions: [1] } } } },
      { name: 'pinned', version: 2, onnx: classifierModel() },
      { name: 'all_types', onnx: identityAllTypesModel() },
      { name: 'typed_types', onnx: identityModelOf(ALL_BUT_FP16) },
      { name: 'bytes', onnx: identityModelOf(['BYTES']) },
      // Waits up to 1 s to make a batch of 2: two requests sent together run as one batch.
      { name: 'bytes_batched', onnx: identityModelOf(['BYTES']), config: { dynamic_batching: { preferred_batch_size: [2], max_queue_delay_microseconds: 1_000_000 } } },
      { name: 'fp32', onnx: identityModelOf(['FP32']) },
      // One input each: a request is judged against the model (every input present) before its elements are decoded.
      ...['INT8', 'INT16', 'UINT8', 'UINT16', 'BOOL'].map((datatype) => ({ name: datatype.toLowerCase(), onnx: identityModelOf([datatype]) })),
    ]);
    server = await startTestServer(repository);
    url = server.url;
    client = new InferenceClient(server.server.grpcAddress);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  /** A good request is still answered (after an error). */
  async function assertServes(): Promise<void> {
    const response = await client.infer(classify());
    assert.deepEqual(outputOf(response, 'label').values, [2n]);
  }

  describe('health and server metadata', () => {
    it('ServerLive and ServerReady answer true', async () => {
      assert.deepEqual(await client.unary('ServerLive', {}), { live: true });
      assert.deepEqual(await client.unary('ServerReady', {}), { ready: true });
    });

    it('ServerMetadata answers what GET /v2 answers', async () => {
      const metadata = await client.unary('ServerMetadata', {});
      const http = await getJson(`${url}/v2`);
      assert.equal(http.status, 200);
      assert.deepEqual(metadata, http.body);
      assert.equal(metadata.name, 'onnx-serving');
      assert.match(metadata.version, /^\d+\.\d+\.\d+/);
    });
  });

  describe('ModelReady, ModelMetadata, ModelConfig', () => {
    it('ModelReady: true for a served model and version; NOT_FOUND for unknown ones; INVALID_ARGUMENT for a version that is not a number', async () => {
      assert.deepEqual(await client.unary('ModelReady', { name: 'classifier' }), { ready: true });
      assert.deepEqual(await client.unary('ModelReady', { name: 'classifier', version: '1' }), { ready: true });
      await rejectsWith(client.unary('ModelReady', { name: 'nope' }), Status.NOT_FOUND, /^Request for unknown model: 'nope' is not found$/);
      await rejectsWith(client.unary('ModelReady', { name: 'classifier', version: '2' }), Status.NOT_FOUND, /model 'classifier' has no version 2/);
      await rejectsWith(client.unary('ModelReady', { name: 'classifier', version: 'one' }), Status.INVALID_ARGUMENT, /model version 'one' is not a positive integer/);
      await rejectsWith(client.unary('ModelReady', { name: 'classifier', version: '01' }), Status.INVALID_ARGUMENT, /model version '01'/);
    });

    it('ModelMetadata: the same content as HTTP, with shapes as int64 (decimal strings, -1 for any size)', async () => {
      const metadata = await client.unary('ModelMetadata', { name: 'classifier' });
      assert.deepEqual(metadata, {
        name: 'classifier',
        versions: ['1'],
        platform: 'onnxruntime_onnx',
        inputs: [{ name: 'input', datatype: 'FP32', shape: ['-1', '4'] }],
        outputs: [
          { name: 'probabilities', datatype: 'FP32', shape: ['-1', '3'] },
          { name: 'label', datatype: 'INT64', shape: ['-1'] },
        ],
      });
      for (const name of ['classifier', 'configured', 'every_version', 'pinned', 'all_types', 'bytes']) {
        for (const version of [undefined, '1']) {
          const grpcAnswer = await client.unary('ModelMetadata', { name, version });
          const http = await getJson(`${url}/v2/models/${name}${version ? `/versions/${version}` : ''}`);
          assert.equal(http.status, 200);
          const asJson = {
            ...grpcAnswer,
            inputs: grpcAnswer.inputs.map((t) => ({ ...t, shape: t.shape.map(Number) })),
            outputs: grpcAnswer.outputs.map((t) => ({ ...t, shape: t.shape.map(Number) })),
          };
          assert.deepEqual(asJson, http.body, `${name} version ${version ?? '(default)'}`);
        }
      }
      await rejectsWith(client.unary('ModelMetadata', { name: 'nope' }), Status.NOT_FOUND, /^Request for unknown model: 'nope' is not found$/);
      await rejectsWith(client.unary('ModelMetadata', { name: 'classifier', version: '3' }), Status.NOT_FOUND, /no version 3/);
      await rejectsWith(client.unary('ModelMetadata', { name: 'classifier', version: 'x' }), Status.INVALID_ARGUMENT, /model version 'x' is not a positive integer/);
    });

    it("ModelConfig: Triton's message, with enums by name and int64 dims", async () => {
      const { config } = await client.unary('ModelConfig', { name: 'configured' });
      assert.equal(config.name, 'configured');
      assert.equal(config.platform, 'onnxruntime_onnx');
      assert.equal(config.backend, 'onnxruntime');
      assert.equal(config.max_batch_size, 4);
      assert.deepEqual(
        config.input.map((t: { name: string; data_type: string; dims: string[] }) => [t.name, t.data_type, t.dims]),
        [['features', 'TYPE_FP32', ['3']], ['counts', 'TYPE_INT64', ['2']], ['mask', 'TYPE_BOOL', ['3']], ['text', 'TYPE_STRING', ['1']]],
      );
      assert.deepEqual(
        config.output.map((t: { name: string; data_type: string }) => [t.name, t.data_type]),
        [['scaled', 'TYPE_FP32'], ['masked', 'TYPE_FP32'], ['total', 'TYPE_INT64'], ['inverted_mask', 'TYPE_BOOL'], ['text_echo', 'TYPE_STRING']],
      );
      assert.deepEqual(config.instance_group, [{ count: 2, kind: 'KIND_CPU', gpus: [] }]);
      assert.equal(config.scheduling_choice, 'dynamic_batching');
      assert.deepEqual(config.dynamic_batching.preferred_batch_size, [2, 4]);
      assert.equal(config.dynamic_batching.max_queue_delay_microseconds, '500');
      assert.equal(config.dynamic_batching.priority_levels, 2);
      assert.equal(config.dynamic_batching.default_priority_level, 1);
      assert.deepEqual(config.dynamic_batching.default_queue_policy, {
        timeout_action: 'DELAY',
        default_timeout_microseconds: '5000000',
        allow_timeout_override: false,
        max_queue_size: 8,
      });
      assert.equal(config.dynamic_batching.priority_queue_policy['2'].max_queue_size, 3);
      assert.deepEqual(config.version_policy, { latest: { num_versions: 1 }, policy_choice: 'latest' });
      assert.equal(config.parameters.intra_op_thread_count.string_value, '1');
      // Triton's field 16: the warm-up samples the model loaded with.
      assert.equal(config.model_warmup.length, 1);
      const [sample] = config.model_warmup;
      assert.equal(sample.name, 'two rows');
      assert.equal(sample.batch_size, 2);
      assert.equal(sample.count, 2);
      assert.deepEqual(sample.inputs.features, { data_type: 'TYPE_FP32', dims: ['3'], random_data: true, input_data_type: 'random_data' });
      assert.deepEqual(sample.inputs.counts, { data_type: 'TYPE_INT64', dims: ['2'], zero_data: true, input_data_type: 'zero_data' });
      assert.deepEqual(sample.inputs.text, { data_type: 'TYPE_STRING', dims: ['1'], input_data_file: 'text.bin', input_data_type: 'input_data_file' });

      assert.deepEqual((await client.unary('ModelConfig', { name: 'every_version' })).config.version_policy, { all: {}, policy_choice: 'all' });
      assert.deepEqual((await client.unary('ModelConfig', { name: 'pinned' })).config.version_policy, { specific: { versions: ['1'] }, policy_choice: 'specific' });
    });

    it('ModelConfig matches GET /v2/models/{m}/config field for field, for every model', async () => {
      for (const name of ['classifier', 'configured', 'every_version', 'pinned', 'all_types', 'bytes', 'bytes_batched']) {
        const { config } = await client.unary('ModelConfig', { name });
        const http = await getJson(`${url}/v2/models/${name}/config`);
        assert.equal(http.status, 200);
        assert.deepEqual(configJson(config), configJson(http.body), name);
        const versioned = await client.unary('ModelConfig', { name, version: '1' });
        assert.deepEqual(versioned, { config });
      }
      await rejectsWith(client.unary('ModelConfig', { name: 'nope' }), Status.NOT_FOUND, /^Request for unknown model: 'nope' is not found$/);
      await rejectsWith(client.unary('ModelConfig', { name: 'pinned', version: '2' }), Status.NOT_FOUND, /pinned/);
      await rejectsWith(client.unary('ModelConfig', { name: 'classifier', version: '-1' }), Status.INVALID_ARGUMENT, /model version '-1' is not a positive integer/);
    });
  });

  describe('ModelInfer', () => {
    it("answers the classifier's probabilities and labels, with the request's id and the version served, in raw form (Triton's) for a typed request", async () => {
      const rows = [SAMPLE, OTHER_SAMPLE];
      const response = await client.infer({ ...classify(rows), id: 'request-42' });
      assert.equal(response.model_name, 'classifier');
      assert.equal(response.model_version, '1');
      assert.equal(response.id, 'request-42');
      const probabilities = outputOf(response, 'probabilities');
      assert.equal(probabilities.form, 'raw');
      assert.deepEqual([probabilities.tensor.datatype, probabilities.tensor.shape], ['FP32', ['2', '3']]);
      const expected = rows.flatMap(softmaxClassifier);
      (probabilities.values as number[]).forEach((p, i) => assert.ok(Math.abs(p - expected[i]!) < 1e-5, `probability ${i}: ${p} vs ${expected[i]}`));
      const label = outputOf(response, 'label');
      assert.deepEqual([label.tensor.datatype, label.tensor.shape, label.values], ['INT64', ['2'], [2n, 0n]]);
      assert.equal(response.parameters.batch_size?.int64_param, '2');
      const typed = await client.infer({ ...classify(rows), parameters: TYPED_ANSWER });
      assert.deepEqual([outputOf(typed, 'label').form, outputOf(typed, 'label').values], ['typed', ['2', '0']]);
    });

    it('answers a raw request in raw form, and only the outputs asked for, in the order asked', async () => {
      const response = await client.infer({ ...classifyRaw([SAMPLE, OTHER_SAMPLE]), model_version: '1', outputs: [{ name: 'label' }, { name: 'probabilities' }] });
      assert.equal(response.model_version, '1');
      assert.deepEqual(response.outputs.map((o) => o.name), ['label', 'probabilities']);
      assert.equal(response.raw_output_contents.length, 2);
      assert.deepEqual(decodeRaw('INT64', response.raw_output_contents[0]!), [2n, 0n]);
      assert.equal(response.raw_output_contents[1]!.length, 2 * 3 * 4);
      const only = await client.infer({ ...classify(), outputs: [{ name: 'label' }] });
      assert.deepEqual(only.outputs.map((o) => o.name), ['label']);
    });

    it('round-trips every datatype but FP16 in typed form, boundaries exact, answered raw, or typed when asked', async () => {
      assertEchoes(await client.infer(typedRequest('typed_types', ALL_BUT_FP16)), ALL_BUT_FP16, 'raw');
      assertEchoes(await client.infer(typedRequest('typed_types', ALL_BUT_FP16, TYPED_ANSWER)), ALL_BUT_FP16, 'typed');
    });

    it('round-trips every datatype, FP16 included, in raw form, and answers in raw form', async () => {
      const response = await client.infer(rawRequest('all_types', ALL_DATATYPES));
      assertEchoes(response, ALL_DATATYPES, 'raw');
    });

    it('refuses FP16 in typed form with INVALID_ARGUMENT naming raw_input_contents', async () => {
      await rejectsWith(
        client.infer({ model_name: 'all_types', inputs: [{ name: 'in_fp16', datatype: 'FP16', shape: [1, 1], contents: { fp32_contents: [1.5] } }] }),
        Status.INVALID_ARGUMENT,
        /input 'in_fp16' is FP16, which has no typed contents field: send it in raw_input_contents/,
      );
      await rejectsWith(
        client.infer({ model_name: 'all_types', inputs: [{ name: 'in_fp16', datatype: 'FP16', shape: [1, 0] }] }),
        Status.INVALID_ARGUMENT,
        /input 'in_fp16' is FP16, which has no typed contents field/,
      );
      await assertServes();
    });

    it('answers typed contents when binary_data_output is false, whatever the form of the request; raw otherwise', async () => {
      assertEchoes(await client.infer(typedRequest('typed_types', ALL_BUT_FP16, { binary_data_output: { bool_param: true } })), ALL_BUT_FP16, 'raw');
      assertEchoes(await client.infer(rawRequest('typed_types', ALL_BUT_FP16, TYPED_ANSWER)), ALL_BUT_FP16, 'typed');
      assertEchoes(await client.infer(rawRequest('typed_types', ALL_BUT_FP16)), ALL_BUT_FP16, 'raw');
    });

    it('answers in raw form when an output is FP16, whatever binary_data_output asks', async () => {
      const response = await client.infer(rawRequest('all_types', ALL_DATATYPES, TYPED_ANSWER));
      assertEchoes(response, ALL_DATATYPES, 'raw');
    });

    it('refuses a binary_data_output that is not a bool_param', async () => {
      await rejectsWith(
        client.infer({ ...classify(), parameters: { binary_data_output: { string_param: 'true' } } }),
        Status.INVALID_ARGUMENT,
        /parameter 'binary_data_output' is "true", expected a bool_param/,
      );
      await assertServes();
    });

    it('takes a 5 MiB message (above gRPC\'s usual 4 MiB) under the default MAX_REQUEST_BYTES, and answers one as large', async () => {
      const large = new InferenceClient(server.server.grpcAddress, { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
      try {
        const elements = (5 * 1024 * 1024) / 4;
        const values = Float32Array.from({ length: elements }, (_, i) => i % 1000);
        const raw = rawOf(values);
        const response = await large.infer({ model_name: 'fp32', inputs: [{ name: 'in_fp32', datatype: 'FP32', shape: [1, elements] }], raw_input_contents: [raw] });
        assert.deepEqual(response.outputs[0]!.shape, ['1', String(elements)]);
        assert.ok(response.raw_output_contents[0]!.equals(raw), 'the 5 MiB output equals the input');
      } finally {
        large.close();
      }
    });
  });

  describe('BYTES', () => {
    const bytesInput = (elements: readonly (string | Uint8Array)[]): ModelInferRequest => ({
      model_name: 'bytes',
      parameters: TYPED_ANSWER,
      inputs: [{ name: 'in_bytes', datatype: 'BYTES', shape: [1, elements.length], contents: { bytes_contents: elements.map((e) => Buffer.from(e)) } }],
    });
    const rawBytesInput = (raw: Buffer, elements: number): ModelInferRequest => ({
      model_name: 'bytes',
      inputs: [{ name: 'in_bytes', datatype: 'BYTES', shape: [1, elements] }],
      raw_input_contents: [raw],
    });

    it('round-trips empty strings, typed and raw', async () => {
      const elements = ['', 'x', '', ''];
      const typed = await client.infer(bytesInput(elements));
      assert.deepEqual(outputOf(typed, 'out_bytes').tensor.contents?.bytes_contents.map(String), elements);
      assert.deepEqual(outputOf(typed, 'out_bytes').tensor.shape, ['1', '4']);
      const raw = await client.infer(rawBytesInput(rawBytes(elements), elements.length));
      assert.ok(raw.raw_output_contents[0]!.equals(rawBytes(elements)), 'the raw answer is the same length-prefixed bytes');
      assert.deepEqual(decodeRaw('BYTES', raw.raw_output_contents[0]!), elements);
      const none = await client.infer({ model_name: 'bytes', inputs: [{ name: 'in_bytes', datatype: 'BYTES', shape: [1, 0] }] });
      assert.deepEqual(outputOf(none, 'out_bytes').tensor.shape, ['1', '0']);
      assert.deepEqual(outputOf(none, 'out_bytes').values, []);
    });

    it('round-trips UTF-8 multibyte strings byte for byte, typed and raw', async () => {
      const elements = ['héllo', '日本語のテキスト', '🎉🚀', 'e\u0301 combining', 'Ω≈ç√'];
      const typed = await client.infer(bytesInput(elements));
      assert.deepEqual(outputOf(typed, 'out_bytes').tensor.contents?.bytes_contents, elements.map((e) => Buffer.from(e, 'utf8')));
      const raw = await client.infer(rawBytesInput(rawBytes(elements), elements.length));
      assert.ok(raw.raw_output_contents[0]!.equals(rawBytes(elements)));
    });

    it('refuses an element holding a NUL byte with INVALID_ARGUMENT naming the input and the element, typed and raw', async () => {
      const elements = ['fine', 'a\u0000b', 'also fine'];
      const message = /input 'in_bytes': element 1 holds a NUL byte/;
      await rejectsWith(client.infer(bytesInput(elements)), Status.INVALID_ARGUMENT, message);
      await rejectsWith(client.infer(rawBytesInput(rawBytes(elements), 3)), Status.INVALID_ARGUMENT, message);
      await assertServes();
    });

    it(
      'refuses only the request whose element holds a NUL byte, not the requests batched with it, and names its own element',
      async () => {
        const stream = client.stream();
        const request = (id: string, elements: string[]): ModelInferRequest => ({
          id,
          model_name: 'bytes_batched',
          parameters: TYPED_ANSWER,
          inputs: [{ name: 'in_bytes', datatype: 'BYTES', shape: [1, elements.length], contents: { bytes_contents: elements.map((e) => Buffer.from(e)) } }],
        });
        stream.write(request('good', ['a', 'b']));
        stream.write(request('nul', ['c', 'd\u0000']));
        stream.end();
        const answers = Object.fromEntries((await stream.finished).map((a) => [a.infer_response?.id, a]));
        assert.match(answers.nul?.error_message ?? '', /input 'in_bytes': element 1 holds a NUL byte/);
        assert.equal(answers.good?.error_message ?? '', '', 'the good request is answered');
        assert.deepEqual(answers.good?.infer_response?.outputs[0]?.contents?.bytes_contents.map(String), ['a', 'b']);
      },
    );

    it('refuses invalid UTF-8 with INVALID_ARGUMENT naming the input and the element, typed and raw', async () => {
      const invalid = [Buffer.from('ok'), Buffer.from([0xff, 0xfe]), Buffer.from([0xe6, 0x97])]; // a stray byte, a truncated sequence
      await rejectsWith(client.infer(bytesInput(invalid)), Status.INVALID_ARGUMENT, /input 'in_bytes': BYTES element 1 is not valid UTF-8/);
      await rejectsWith(client.infer(bytesInput([Buffer.from('ok'), invalid[2]!])), Status.INVALID_ARGUMENT, /input 'in_bytes': BYTES element 1 is not valid UTF-8/);
      await rejectsWith(client.infer(rawBytesInput(rawBytes([invalid[2]!]), 1)), Status.INVALID_ARGUMENT, /input 'in_bytes': BYTES element 0 is not valid UTF-8/);
      await assertServes();
    });

    it('refuses raw BYTES whose length prefixes do not add up, saying where', async () => {
      const truncatedPrefix = Buffer.concat([rawBytes(['ok']), Buffer.from([1, 0])]);
      await rejectsWith(
        client.infer(rawBytesInput(truncatedPrefix, 2)),
        Status.INVALID_ARGUMENT,
        /^input 'in_bytes': raw BYTES element 1 starts at byte 6 but only 2 bytes remain for its 4-byte length$/,
      );
      const pastTheEnd = Buffer.concat([rawBytes(['ok']), Buffer.from([9, 0, 0, 0, 0x41])]);
      await rejectsWith(client.infer(rawBytesInput(pastTheEnd, 2)), Status.INVALID_ARGUMENT, /^input 'in_bytes': raw BYTES element 1 says 9 bytes, but only 1 remain$/);
      const hugeLength = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x41]);
      await rejectsWith(client.infer(rawBytesInput(hugeLength, 1)), Status.INVALID_ARGUMENT, /raw BYTES element 0 says 4294967295 bytes, but only 1 remain/);
      await rejectsWith(client.infer(rawBytesInput(rawBytes(['a', 'b']), 3)), Status.INVALID_ARGUMENT, /input 'in_bytes' has 2 elements, but its shape \[1,3\] holds 3/);
      await assertServes();
    });
  });

  describe('errors: the status code and a message naming the problem; the server keeps serving', () => {
    const raw16 = Buffer.alloc(16);
    const noContents = (overrides: Partial<InferInputTensor> = {}) => classifierInput([SAMPLE], { contents: undefined, ...overrides });
    const cases: Array<[string, ModelInferRequest, Status, RegExp]> = [
      ['unknown model', classify([SAMPLE], 'nope'), Status.NOT_FOUND, /^Request for unknown model: 'nope' is not found$/],
      ['unknown version', { ...classify(), model_version: '7' }, Status.NOT_FOUND, /model 'classifier' has no version 7/],
      ['a version that is not a number', { ...classify(), model_version: 'latest' }, Status.INVALID_ARGUMENT, /model version 'latest' is not a positive integer/],
      ['no model name', { ...classify(), model_name: '' }, Status.INVALID_ARGUMENT, /model_name is empty/],
      ['no inputs', { model_name: 'classifier', inputs: [] }, Status.INVALID_ARGUMENT, /the request has no inputs/],
      ['an input without a name', { model_name: 'classifier', inputs: [classifierInput([SAMPLE], { name: '' })] }, Status.INVALID_ARGUMENT, /input 0 has no name/],
      ['wrong shape', { model_name: 'classifier', inputs: [classifierInput([SAMPLE], { shape: [2, 2] })] }, Status.INVALID_ARGUMENT, /input 'input' has shape \[2,2\], expected \[-1,4\] \(axis 1 must be 4\)/],
      ['wrong rank', { model_name: 'classifier', inputs: [classifierInput([SAMPLE], { shape: [4] })] }, Status.INVALID_ARGUMENT, /input 'input' has shape \[4\] \(rank 1\), expected \[-1,4\] \(rank 2\)/],
      ['a negative dimension', { model_name: 'classifier', inputs: [classifierInput([SAMPLE], { shape: [-1, 4] })] }, Status.INVALID_ARGUMENT, /input 'input' has an invalid dimension -1 at axis 0/],
      ['batch over max_batch_size', { model_name: 'classifier', inputs: [classifierInput(new Array(9).fill(SAMPLE))] }, Status.INVALID_ARGUMENT, /input 'input' has batch size 9, expected 1 to 8/],
      ['wrong datatype', { model_name: 'classifier', inputs: [classifierInput([SAMPLE], { datatype: 'FP64', contents: { fp64_contents: SAMPLE } })] }, Status.INVALID_ARGUMENT, /input 'input' has datatype FP64, expected FP32/],
      ['unknown datatype', { model_name: 'classifier', inputs: [classifierInput([SAMPLE], { datatype: 'FLOAT' })] }, Status.INVALID_ARGUMENT, /input 'input' has datatype 'FLOAT', which is not one of BOOL, /],
      ['unknown input', { model_name: 'classifier', inputs: [classifierInput([SAMPLE]), classifierInput([SAMPLE], { name: 'extra' })] }, Status.INVALID_ARGUMENT, /unknown input 'extra'/],
      ['an input given twice', { model_name: 'classifier', inputs: [classifierInput([SAMPLE]), classifierInput([SAMPLE])] }, Status.INVALID_ARGUMENT, /input 'input' is given more than once/],
      ['missing input', { model_name: 'configured', inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 3], contents: { fp32_contents: [1, 2, 3] } }] }, Status.INVALID_ARGUMENT, /missing input 'counts', 'mask', 'text'/],
      ['unknown output', { ...classify(), outputs: [{ name: 'logits' }] }, Status.INVALID_ARGUMENT, /unknown output 'logits': the model's outputs are 'probabilities', 'label'/],
      ['an output without a name', { ...classify(), outputs: [{ name: '' }] }, Status.INVALID_ARGUMENT, /output 0 has no name/],
      ['element count not matching the shape', { model_name: 'classifier', inputs: [classifierInput([SAMPLE], { shape: [2, 4] })] }, Status.INVALID_ARGUMENT, /input 'input' has 4 elements, but its shape \[2,4\] holds 8/],
      ['raw byte count not matching the shape', { model_name: 'classifier', inputs: [noContents()], raw_input_contents: [Buffer.alloc(12)] }, Status.INVALID_ARGUMENT, /input 'input': its raw_input_contents entry has 12 bytes, expected 16 \(4 FP32 elements of 4 bytes for shape \[1,4\]\)/],
      ['raw bytes not whole elements', { model_name: 'fp32', inputs: [{ name: 'in_fp32', datatype: 'FP32', shape: [1, 2] }], raw_input_contents: [Buffer.alloc(7)] }, Status.INVALID_ARGUMENT, /input 'in_fp32': its raw_input_contents entry has 7 bytes, expected 8/],
      ['raw entries fewer than inputs', { model_name: 'classifier', inputs: [noContents(), noContents({ name: 'second' })], raw_input_contents: [raw16] }, Status.INVALID_ARGUMENT, /raw_input_contents has 1 entries but the request has 2 inputs/],
      ['raw entries more than inputs', { model_name: 'classifier', inputs: [noContents()], raw_input_contents: [raw16, raw16] }, Status.INVALID_ARGUMENT, /raw_input_contents has 2 entries but the request has 1 inputs/],
      ['typed contents mixed with raw', { ...classify(), raw_input_contents: [raw16] }, Status.INVALID_ARGUMENT, /contents field must not be specified when using raw_input_contents for 'input' for model 'classifier': send every input in one form/],
      ['FP32 elements in int_contents', { model_name: 'classifier', inputs: [classifierInput([SAMPLE], { contents: { int_contents: [1, 2, 3, 4] } })] }, Status.INVALID_ARGUMENT, /input 'input' is FP32, so its elements go in contents\.fp32_contents, not contents\.int_contents/],
      ['elements in two fields', { model_name: 'classifier', inputs: [classifierInput([SAMPLE], { contents: { fp32_contents: SAMPLE, fp64_contents: [1] } })] }, Status.INVALID_ARGUMENT, /not contents\.fp64_contents/],
      ['INT8 above its range in int_contents', { model_name: 'int8', inputs: [{ name: 'in_int8', datatype: 'INT8', shape: [1, 2], contents: { int_contents: [1, 128] } }] }, Status.INVALID_ARGUMENT, /input 'in_int8': element 1 is 128, expected an integer from -128 to 127 for INT8/],
      ['INT8 below its range in int_contents', { model_name: 'int8', inputs: [{ name: 'in_int8', datatype: 'INT8', shape: [1, 1], contents: { int_contents: [-129] } }] }, Status.INVALID_ARGUMENT, /input 'in_int8': element 0 is -129/],
      ['INT16 out of range', { model_name: 'int16', inputs: [{ name: 'in_int16', datatype: 'INT16', shape: [1, 1], contents: { int_contents: [32768] } }] }, Status.INVALID_ARGUMENT, /input 'in_int16': element 0 is 32768, expected an integer from -32768 to 32767 for INT16/],
      ['UINT8 out of range in uint_contents', { model_name: 'uint8', inputs: [{ name: 'in_uint8', datatype: 'UINT8', shape: [1, 2], contents: { uint_contents: [255, 256] } }] }, Status.INVALID_ARGUMENT, /input 'in_uint8': element 1 is 256, expected an integer from 0 to 255 for UINT8/],
      ['UINT16 out of range', { model_name: 'uint16', inputs: [{ name: 'in_uint16', datatype: 'UINT16', shape: [1, 1], contents: { uint_contents: [65536] } }] }, Status.INVALID_ARGUMENT, /input 'in_uint16': element 0 is 65536/],
      ['a raw BOOL byte that is not 0 or 1', { model_name: 'bool', inputs: [{ name: 'in_bool', datatype: 'BOOL', shape: [1, 2] }], raw_input_contents: [Buffer.from([1, 2])] }, Status.INVALID_ARGUMENT, /input 'in_bool': BOOL element 1 is the byte 2, expected 0 or 1/],
      ['a request parameter without a value', { ...classify(), parameters: { priority: {} as never } }, Status.INVALID_ARGUMENT, /parameters\['priority'\] has no value/],
    ];
    for (const [what, request, code, details] of cases) {
      it(`${what}: ${Status[code]}`, async () => {
        await rejectsWith(client.infer(request), code, details);
        await assertServes();
      });
    }

    it('names an oversized dimension as the client sent it', async () => {
      await rejectsWith(
        client.infer({ model_name: 'classifier', inputs: [noContents({ shape: ['1', '9007199254740993'] })], raw_input_contents: [raw16] }),
        Status.INVALID_ARGUMENT,
        /input 'input' has an invalid dimension 9007199254740993 at axis 1/,
      );
    });

    it('refuses a huge dimension with INVALID_ARGUMENT, and still serves', async () => {
      await rejectsWith(
        client.infer({ model_name: 'classifier', inputs: [noContents({ shape: ['9223372036854775807', '4'] })], raw_input_contents: [raw16] }),
        Status.INVALID_ARGUMENT,
        /input 'input' has an invalid dimension .* at axis 0/,
      );
      await assertServes();
    });
  });

  describe('ModelStatistics', () => {
    it('counts inferences, executions, successes and their durations as they happen', async () => {
      const [before] = (await client.unary('ModelStatistics', { name: 'counted' })).model_stats;
      assert.equal(before?.name, 'counted');
      assert.equal(before?.version, '1');
      assert.equal(count(before?.inference_count), 0);
      assert.equal(count(before?.execution_count), 0);
      const startedAt = Date.now();
      // One after the other: each is its own execution. Rows count as inferences.
      await client.infer(classify([SAMPLE, OTHER_SAMPLE], 'counted'));
      await client.infer(classifyRaw([SAMPLE, SAMPLE], 'counted'));
      await client.infer(classify([OTHER_SAMPLE], 'counted'));
      const [stats] = (await client.unary('ModelStatistics', { name: 'counted' })).model_stats;
      assert.ok(stats);
      assert.equal(count(stats.inference_count), 5);
      assert.equal(count(stats.execution_count), 3);
      const s = stats.inference_stats;
      assert.equal(count(s.success?.count), 3);
      assert.equal(count(s.fail?.count), 0);
      for (const phase of ['success', 'queue', 'compute_input', 'compute_infer', 'compute_output'] as const) {
        assert.equal(count(s[phase]?.count), 3, `${phase}.count`);
        assert.ok(count(s[phase]?.ns) > 0, `${phase}.ns is ${s[phase]?.ns}`);
      }
      assert.ok(count(stats.last_inference) >= startedAt - 1000, `last_inference ${stats.last_inference} is an epoch time in ms`);
      const batches = Object.fromEntries(stats.batch_stats.map((b) => [b.batch_size, count(b.compute_infer?.count)]));
      assert.deepEqual(batches, { '1': 1, '2': 2 });
    });

    it('answers every model, one model, or one version, with the figures of HTTP /stats', async () => {
      await client.infer(classify());
      const all = await client.unary('ModelStatistics', {});
      const httpAll = await getJson(`${url}/v2/models/stats`);
      assert.deepEqual(statisticsJson(all), httpAll.body);
      assert.deepEqual(
        all.model_stats.map((s) => `${s.name}/${s.version}`).sort(),
        ['all_types/1', 'bool/1', 'bytes/1', 'bytes_batched/1', 'classifier/1', 'configured/1', 'counted/1', 'every_version/1', 'fp32/1', 'int16/1', 'int8/1', 'pinned/1', 'typed_types/1', 'uint16/1', 'uint8/1'],
      );
      assert.ok(count(all.model_stats.find((s) => s.name === 'classifier')?.inference_count) > 0);

      const one = await client.unary('ModelStatistics', { name: 'counted' });
      assert.equal(one.model_stats.length, 1);
      assert.deepEqual(statisticsJson(one), (await getJson(`${url}/v2/models/counted/stats`)).body);
      const version = await client.unary('ModelStatistics', { name: 'counted', version: '1' });
      assert.deepEqual(version, one);
      assert.deepEqual(statisticsJson(version), (await getJson(`${url}/v2/models/counted/versions/1/stats`)).body);
      assert.equal(count(one.model_stats[0]!.inference_count), 5, 'what the previous test counted');
    });

    it('answers NOT_FOUND for an unknown model or version, INVALID_ARGUMENT for a version without a model', async () => {
      await rejectsWith(client.unary('ModelStatistics', { name: 'nope' }), Status.NOT_FOUND, /^Request for unknown model: 'nope' is not found$/);
      await rejectsWith(client.unary('ModelStatistics', { name: 'counted', version: '9' }), Status.NOT_FOUND, /model 'counted' has no version 9/);
      await rejectsWith(client.unary('ModelStatistics', { name: '', version: '1' }), Status.INVALID_ARGUMENT, /version '1' is given without a model name/);
      await rejectsWith(client.unary('ModelStatistics', { name: 'counted', version: 'v1' }), Status.INVALID_ARGUMENT, /model version 'v1' is not a positive integer/);
    });
  });

  describe('ModelStreamInfer', () => {
    const echo = (id: string, value: number, form: 'typed' | 'raw' = 'typed'): ModelInferRequest =>
      form === 'typed'
        ? { id, model_name: 'fp32', inputs: [{ name: 'in_fp32', datatype: 'FP32', shape: [1, 1], contents: { fp32_contents: [value] } }] }
        : { id, model_name: 'fp32', inputs: [{ name: 'in_fp32', datatype: 'FP32', shape: [1, 1] }], raw_input_contents: [rawOf(Float32Array.of(value))] };

    it('answers each request of a stream exactly once, with its id and its own result, in raw form (typed when asked)', async () => {
      const stream = client.stream();
      for (let i = 0; i < 20; i++) stream.write({ ...echo(`r${i}`, i, i % 2 === 0 ? 'typed' : 'raw'), parameters: i % 4 === 0 ? TYPED_ANSWER : undefined });
      stream.end();
      const answers = await stream.finished;
      assert.equal(answers.length, 20);
      assert.deepEqual(answers.map((a) => a.infer_response?.id).sort(), Array.from({ length: 20 }, (_, i) => `r${i}`).sort());
      for (const answer of answers) {
        assert.equal(answer.error_message ?? '', '');
        const response = answer.infer_response!;
        const i = Number(response.id!.slice(1));
        assert.equal(response.model_name, 'fp32');
        assert.equal(response.model_version, '1');
        const output = outputOf(response, 'out_fp32');
        assert.equal(output.form, i % 4 === 0 ? 'typed' : 'raw', `r${i}`);
        assert.deepEqual(output.values, [i], `r${i} answers its own input`);
      }
    });

    it("answers a failed request with error_message and the request's id, and the stream goes on", async () => {
      const stream = client.stream();
      stream.write(echo('a', 1));
      stream.write({ ...echo('b', 2), inputs: [{ name: 'extra', datatype: 'FP32', shape: [1, 1], contents: { fp32_contents: [2] } }] });
      stream.write(echo('c', 3));
      const first = await stream.received(3);
      const byId = Object.fromEntries(first.map((a) => [a.infer_response?.id, a]));
      assert.match(byId.b?.error_message ?? '', /unknown input 'extra': the model's inputs are 'in_fp32'/);
      assert.equal(byId.b?.infer_response?.model_name, 'fp32');
      assert.deepEqual(byId.b?.infer_response?.outputs, []);
      for (const id of ['a', 'c']) {
        assert.equal(byId[id]?.error_message ?? '', '', id);
        assert.deepEqual(outputOf(byId[id]!.infer_response!, 'out_fp32').values, [id === 'a' ? 1 : 3]);
      }
      // After the error: more requests on the same stream, a bad one of another kind among them.
      stream.write({ ...echo('d', 4), model_name: 'nope' });
      stream.write({ ...echo('e', 5), inputs: [] });
      stream.write(echo('f', 6));
      stream.end();
      const answers = await stream.finished;
      assert.equal(answers.length, 6);
      const later = Object.fromEntries(answers.slice(3).map((a) => [a.infer_response?.id, a]));
      assert.match(later.d?.error_message ?? '', /^Request for unknown model: 'nope' is not found$/);
      assert.equal(later.d?.infer_response?.model_name, 'nope');
      assert.match(later.e?.error_message ?? '', /^the request has no inputs$/);
      assert.equal(later.f?.error_message ?? '', '');
      assert.deepEqual(outputOf(later.f!.infer_response!, 'out_fp32').values, [6]);
    });

    it('ends the stream after the last answer once the client half-closes, and at once when it sent nothing', async () => {
      const stream = client.stream();
      for (let i = 0; i < 5; i++) stream.write(echo(`h${i}`, i));
      stream.end();
      const answers = await stream.finished;
      assert.equal(answers.length, 5, 'every answer came before the end of the stream');
      const empty = client.stream();
      empty.end();
      assert.deepEqual(await empty.finished, []);
    });

    it('answers 300 requests of one stream (above the 256 handled at once), each once', async () => {
      const stream = client.stream();
      const total = 300;
      for (let i = 0; i < total; i++) stream.write({ ...classify([i % 2 === 0 ? SAMPLE : OTHER_SAMPLE]), id: `m${i}` });
      stream.end();
      const answers = await stream.finished;
      assert.equal(answers.length, total);
      assert.equal(new Set(answers.map((a) => a.infer_response?.id)).size, total);
      for (const answer of answers) {
        assert.equal(answer.error_message ?? '', '', answer.error_message);
        const i = Number(answer.infer_response!.id!.slice(1));
        assert.deepEqual(outputOf(answer.infer_response!, 'label').values, [i % 2 === 0 ? 2n : 0n]);
      }
    });
  });
});

describe('gRPC message size under a small MAX_REQUEST_BYTES', () => {
  const LIMIT = 64 * 1024;
  let server: TestServer;
  let client: InferenceClient;
  before(async () => {
    server = await startTestServer(await makeRepository([{ name: 'fp32', onnx: identityModelOf(['FP32']) }]), { MAX_REQUEST_BYTES: String(LIMIT) });
    client = new InferenceClient(server.server.grpcAddress, { 'grpc.max_send_message_length': -1 });
  });
  after(async () => {
    client.close();
    await server.close();
  });

  const request = (elements: number): ModelInferRequest => ({
    model_name: 'fp32',
    inputs: [{ name: 'in_fp32', datatype: 'FP32', shape: [1, elements] }],
    raw_input_contents: [rawOf(new Float32Array(elements).fill(0.25))],
  });

  it('refuses a larger message with RESOURCE_EXHAUSTED naming both sizes, and serves the next one', async () => {
    await rejectsWith(client.infer(request(LIMIT / 4 + 1024)), Status.RESOURCE_EXHAUSTED, new RegExp(`larger than max \\(\\d+ vs ${LIMIT}\\)`));
    const small = await client.infer(request(1000));
    assert.deepEqual(decodeRaw('FP32', small.raw_output_contents[0]!), new Array(1000).fill(0.25));
  });

  it('takes a message just under the limit', async () => {
    const response = await client.infer(request(LIMIT / 4 - 64));
    assert.equal(response.raw_output_contents[0]!.length, LIMIT - 256);
  });
});
