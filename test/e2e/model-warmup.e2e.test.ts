import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import onnxProto from 'onnx-proto';
import { parseIntModel } from '../../scripts/build-models.js';
import { REPO_ROOT } from '../support/repo-files.js';
import { bearer, getJson, makeRepository, postJson, requestJson, startTestServer, type TestServer } from '../support/test-server.js';

import onnx = onnxProto.onnx;

/**
 * Triton's warm-up: a version runs nothing before it serves unless its config has `model_warmup`
 * samples; then each runs on every instance first, and a sample that fails fails the load.
 */
const TOKEN = 'model-warmup-test-token-0123456789';
const SILERO_V5 = join(REPO_ROOT, 'node_modules', '@ricky0123', 'vad-web', 'dist', 'silero_vad_v5.onnx');

/** BYTES warm-up data: each element a 4-byte little-endian length, then its bytes. */
function stringsFile(...elements: string[]): Uint8Array {
  return Buffer.concat(
    elements.flatMap((element) => {
      const bytes = Buffer.from(element, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(bytes.length);
      return [length, bytes];
    }),
  );
}

/** parse_int's text input with data from `inputs`, as a model_warmup sample. */
const textSample = (name: string, text: object, extra: object = {}) => ({ name, batch_size: 1, inputs: { text: { data_type: 'TYPE_STRING', dims: [], ...text } }, ...extra });

/** silero VAD v5 with one 512-sample chunk at 16 kHz (the rate from a file), `input` as given. */
const sileroWarmup = (input: object, srFile = 'sr.bin') => ({
  model_warmup: [
    {
      name: 'one chunk',
      batch_size: 1,
      inputs: {
        input: { data_type: 'TYPE_FP32', dims: [1, 512], ...input },
        state: { data_type: 'TYPE_FP32', dims: [2, 1, 128], zero_data: true },
        sr: { data_type: 'TYPE_INT64', dims: [], input_data_file: srFile },
      },
    },
  ],
});
const SAMPLE_RATE = new Uint8Array(BigInt64Array.of(16000n).buffer);

/** parse_int with a lookup: the parsed number indexes a 3-element table, so any number from 3 up fails at run time. */
function parseIntLookupModel(): Uint8Array {
  const model = onnx.ModelProto.decode(parseIntModel());
  const graph = model.graph!;
  graph.initializer = [...(graph.initializer ?? []), { name: 'table', dataType: onnx.TensorProto.DataType.INT64, dims: [3], rawData: new Uint8Array(BigInt64Array.of(0n, 2n, 4n).buffer) }];
  graph.node = [
    graph.node![0]!,
    { opType: 'Gather', input: ['table', 'number'], output: ['doubled'], name: 'lookup', attribute: [] },
  ];
  return onnx.ModelProto.encode(model).finish();
}

describe("model_warmup (Triton's warm-up samples)", () => {
  let server: TestServer;
  let repository: string;

  before(async () => {
    repository = await makeRepository([
      { name: 'parse_int', onnx: parseIntModel() },
      { name: 'parse_int_empty', onnx: parseIntModel(), config: { model_warmup: [textSample('empty strings', { zero_data: true })] } },
      { name: 'parse_int_file', onnx: parseIntModel(), config: { model_warmup: [textSample('from a file', { input_data_file: 'numbers/21.bin' }, { batch_size: 3, count: 2 })] }, warmup: {} },
      { name: 'silero', onnx: { copyFrom: SILERO_V5 }, config: sileroWarmup({ random_data: true }), warmup: { 'sr.bin': SAMPLE_RATE } },
      { name: 'silero_short_file', onnx: { copyFrom: SILERO_V5 }, config: sileroWarmup({ zero_data: true }), warmup: { 'sr.bin': SAMPLE_RATE.slice(0, 4) } },
      { name: 'silero_missing_file', onnx: { copyFrom: SILERO_V5 }, config: sileroWarmup({ zero_data: true }, 'absent.bin') },
      { name: 'silero_huge', onnx: { copyFrom: SILERO_V5 }, config: { model_warmup: [{ ...sileroWarmup({ zero_data: true }).model_warmup[0], inputs: { ...sileroWarmup({ zero_data: true }).model_warmup[0]!.inputs, input: { data_type: 'TYPE_FP32', dims: [1, 20_000_000], zero_data: true } } }] }, warmup: { 'sr.bin': SAMPLE_RATE } },
      { name: 'parse_int_escape', onnx: parseIntModel(), config: { model_warmup: [textSample('escape', { input_data_file: '../config.json' })] } },
      { name: 'parse_int_link', onnx: parseIntModel(), config: { model_warmup: [textSample('link', { input_data_file: 'outside.bin' })] } },
    ]);
    await mkdir(join(repository, 'parse_int_file', 'warmup', 'numbers'), { recursive: true });
    await writeFile(join(repository, 'parse_int_file', 'warmup', 'numbers', '21.bin'), stringsFile('21'));
    // A link from the warmup folder to a file outside it (here the model's own config.json).
    await mkdir(join(repository, 'parse_int_link', 'warmup'), { recursive: true });
    await symlink(join(repository, 'parse_int_link', 'config.json'), join(repository, 'parse_int_link', 'warmup', 'outside.bin'));
    server = await startTestServer(repository, { ADMIN_TOKEN: TOKEN, STRICT_READINESS: 'false' });
  });
  after(() => server.close());

  const versionOf = async (model: string) => {
    const { body } = await getJson(`${server.url}/health`);
    const [version] = body.details.models.models[model];
    return version as { state: string; reason: string };
  };
  const parse = (model: string, texts: string[]) => postJson(`${server.url}/v2/models/${model}/infer`, { inputs: [{ name: 'text', datatype: 'BYTES', shape: [texts.length], data: texts }] });

  it('without model_warmup, a model that refuses made-up inputs (empty strings) loads and serves', async () => {
    assert.deepEqual(await versionOf('parse_int'), { version: '1', state: 'READY', reason: '', executionProvider: 'cpu' });
    const { status, body } = await parse('parse_int', ['21', '-4']);
    assert.equal(status, 200, JSON.stringify(body));
    assert.deepEqual(body.outputs[0].data, [42, -8]);
  });

  it('a configured sample that fails fails the load: UNAVAILABLE, naming the sample and why', async () => {
    const { state, reason } = await versionOf('parse_int_empty');
    assert.equal(state, 'UNAVAILABLE');
    assert.match(reason, /warm-up sample 'empty strings' failed: .*Cast/);
    assert.equal((await parse('parse_int_empty', ['1'])).status, 503);
  });

  it('a sample from a file of warmup/ (BYTES, 3 rows, run twice) warms the model up, which then serves', async () => {
    assert.equal((await versionOf('parse_int_file')).state, 'READY');
    assert.deepEqual((await parse('parse_int_file', ['5'])).body.outputs[0].data, [10]);
  });

  it('silero VAD v5 warms up on random audio, zero state and the sample rate from a file, then serves', async () => {
    assert.equal((await versionOf('silero')).state, 'READY');
    const { status, body } = await postJson(`${server.url}/v2/models/silero/infer`, {
      inputs: [
        { name: 'input', datatype: 'FP32', shape: [1, 512], data: new Array(512).fill(0.01) },
        { name: 'state', datatype: 'FP32', shape: [2, 1, 128], data: new Array(256).fill(0) },
        { name: 'sr', datatype: 'INT64', shape: [], data: [16000] },
      ],
    });
    assert.equal(status, 200, JSON.stringify(body));
    const { body: config } = await getJson(`${server.url}/v2/models/silero/config`);
    assert.deepEqual(config.model_warmup[0].inputs.sr, { data_type: 'TYPE_INT64', dims: [], input_data_file: 'sr.bin' });
    assert.deepEqual(config.model_warmup[0].inputs.input, { data_type: 'TYPE_FP32', dims: [1, 512], random_data: true });
    assert.equal(config.model_warmup[0].count, 0);
  });

  it('refuses a file shorter than one row, a missing file, and a sample over 64 MiB (before allocating it)', async () => {
    assert.match((await versionOf('silero_short_file')).reason, /input 'sr': its warm-up file 'sr\.bin' holds 4 bytes, but one row of it is 8 bytes/);
    assert.match((await versionOf('silero_missing_file')).reason, /warm-up file 'absent\.bin' is not in the model's warmup\/ folder/);
    assert.match((await versionOf('silero_huge')).reason, /model_warmup\[0\] 'one chunk': the sample holds more than 67108864 bytes/);
  });

  it('refuses a warm-up file outside the warmup/ folder, by its name or through a link', async () => {
    assert.match((await versionOf('parse_int_escape')).reason, /config\.json: model_warmup\.0\.inputs\.text\.input_data_file: '\.\.\/config\.json' is not a file of the model's warmup\/ folder/);
    assert.match((await versionOf('parse_int_link')).reason, /warm-up file 'outside\.bin' resolves outside the model's warmup\/ folder/);
  });

  it('the hot swap and the upload check run the samples too: a version that fails them never serves, and the old one keeps serving', async () => {
    const failing = parseIntLookupModel();
    const upload = await fetch(`${server.url}/admin/models/parse_int_file/versions/2`, {
      method: 'PUT',
      headers: { ...bearer(TOKEN), 'content-type': 'application/octet-stream' },
      body: failing,
    });
    const uploadBody = (await upload.json()) as { error: string };
    assert.equal(upload.status, 400, JSON.stringify(uploadBody));
    assert.match(uploadBody.error, /the uploaded model does not load: warm-up sample 'from a file' failed: .*indices/);

    await mkdir(join(repository, 'parse_int_file', '2'));
    await writeFile(join(repository, 'parse_int_file', '2', 'model.onnx'), failing);
    const swap = await requestJson('PUT', `${server.url}/admin/models/parse_int_file/default-version`, { headers: bearer(TOKEN), body: { version: '2' } });
    assert.equal(swap.status, 400, JSON.stringify(swap.body));
    assert.match(swap.body.error, /version 2 failed to load: warm-up sample 'from a file' failed/);
    const served = await parse('parse_int_file', ['1']);
    assert.equal(served.body.model_version, '1');
    assert.deepEqual(served.body.outputs[0].data, [2]);
  });
});
