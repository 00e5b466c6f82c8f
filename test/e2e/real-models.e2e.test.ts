import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { InferenceClient, outputOf } from '../support/grpc-client.js';
import { REPO_ROOT } from '../support/repo-files.js';
import { getJson, makeRepository, postJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Real models no one here wrote, as npm packages ship them, served under strict readiness and
 * compared with onnxruntime-node run directly in the test: Silero VAD v5 (STFT front end, an LSTM
 * state carried between calls, a scalar INT64 sample rate; it refuses made-up inputs such as one
 * audio sample) and an openWakeWord keyword classifier.
 */
const SILERO_V5 = join(REPO_ROOT, 'node_modules', '@ricky0123', 'vad-web', 'dist', 'silero_vad_v5.onnx');
const WAKE_WORD = join(REPO_ROOT, 'node_modules', 'openwakeword-js', 'models', 'hello_deepa.onnx');
const WAKE_WORD_INPUT = 'onnx::Flatten_0';

/** 512 samples (32 ms at 16 kHz) of a deterministic, speech-like signal: a few harmonics under an envelope. */
function audioChunk(samples = 512): Float32Array {
  return Float32Array.from({ length: samples }, (_, i) => 0.4 * Math.sin(i / 9) * (Math.sin(i * 0.21) + 0.5 * Math.sin(i * 0.43) + 0.25 * Math.sin(i * 0.97)));
}

/** openWakeWord's input: 25 frames of 96 embedding features, deterministic. */
function embeddingFrames(): Float32Array {
  return Float32Array.from({ length: 25 * 96 }, (_, i) => Math.cos(i * 0.017) * 2 - 0.5);
}

async function runDirect(file: string, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
  const session = await ort.InferenceSession.create(file, { executionProviders: ['cpu'] });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

function assertMatches(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: element count`);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(Number(actual[i]) - Number(expected[i])) / Math.max(1, Math.abs(Number(expected[i]))));
  assert.ok(worst < 1e-5, `${what}: largest relative difference ${worst}`);
}

describe('real models from npm packages, served under strict readiness, equal a direct onnxruntime run', () => {
  let server: TestServer;
  let client: InferenceClient;
  const audio = audioChunk();
  const state = new Float32Array(2 * 1 * 128);

  before(async () => {
    const repository = await makeRepository([
      { name: 'silero_vad', onnx: { copyFrom: SILERO_V5 } },
      { name: 'wake_word', onnx: { copyFrom: WAKE_WORD } },
    ]);
    server = await startTestServer(repository, { STRICT_READINESS: 'true' });
    client = new InferenceClient(server.server.grpcAddress);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  it('both load (no made-up warm-up refuses them) and the server is ready', async () => {
    assert.equal((await fetch(`${server.url}/v2/health/ready`)).status, 200);
    const { body } = await getJson(`${server.url}/v2/models/silero_vad`);
    assert.deepEqual(
      body.inputs.map((t: { name: string; datatype: string; shape: number[] }) => [t.name, t.datatype, t.shape]),
      [
        ['input', 'FP32', [-1, -1]],
        ['state', 'FP32', [2, -1, 128]],
        ['sr', 'INT64', []],
      ],
    );
  });

  it('silero VAD v5 over HTTP: speech probability and next state as a direct run computes them', async () => {
    const direct = await runDirect(SILERO_V5, {
      input: new ort.Tensor('float32', audio.slice(), [1, 512]),
      state: new ort.Tensor('float32', state.slice(), [2, 1, 128]),
      sr: new ort.Tensor('int64', BigInt64Array.of(16000n), []),
    });
    const { status, body } = await postJson(`${server.url}/v2/models/silero_vad/infer`, {
      inputs: [
        { name: 'input', datatype: 'FP32', shape: [1, 512], data: Array.from(audio) },
        { name: 'state', datatype: 'FP32', shape: [2, 1, 128], data: Array.from(state) },
        { name: 'sr', datatype: 'INT64', shape: [], data: [16000] },
      ],
    });
    assert.equal(status, 200, JSON.stringify(body));
    const byName = Object.fromEntries(body.outputs.map((o: { name: string }) => [o.name, o]));
    assert.deepEqual(byName.output.shape, direct.output!.dims);
    assert.deepEqual(byName.stateN.shape, direct.stateN!.dims);
    assertMatches(byName.output.data, direct.output!.data as Float32Array, 'output');
    assertMatches(byName.stateN.data, direct.stateN!.data as Float32Array, 'stateN');
    const probability = byName.output.data[0];
    assert.ok(probability >= 0 && probability <= 1, `a probability: ${probability}`);
    assert.ok((direct.stateN!.data as Float32Array).some((v) => v !== 0), 'the state moved: the comparison is not vacuous');
  });

  it('silero VAD v5 over gRPC, the state of one call fed to the next, as a direct run', async () => {
    const session = await ort.InferenceSession.create(SILERO_V5, { executionProviders: ['cpu'] });
    let directState: ort.Tensor = new ort.Tensor('float32', state.slice(), [2, 1, 128]);
    let servedState = Array.from(state);
    try {
      for (const offset of [0, 0.3, 0.6]) {
        const chunk = audio.map((v, i) => v * Math.cos(i * offset));
        const direct = await session.run({ input: new ort.Tensor('float32', chunk.slice(), [1, 512]), state: directState, sr: new ort.Tensor('int64', BigInt64Array.of(16000n), []) });
        const served = await client.infer({
          model_name: 'silero_vad',
          inputs: [
            { name: 'input', datatype: 'FP32', shape: [1, 512], contents: { fp32_contents: Array.from(chunk) } },
            { name: 'state', datatype: 'FP32', shape: [2, 1, 128], contents: { fp32_contents: servedState } },
            { name: 'sr', datatype: 'INT64', shape: [], contents: { int64_contents: ['16000'] } },
          ],
        });
        const output = outputOf(served, 'output');
        const stateN = outputOf(served, 'stateN');
        assert.deepEqual(output.tensor.shape.map(Number), direct.output!.dims);
        assertMatches(output.values as number[], direct.output!.data as Float32Array, `output after offset ${offset}`);
        assertMatches(stateN.values as number[], direct.stateN!.data as Float32Array, `stateN after offset ${offset}`);
        directState = direct.stateN as ort.Tensor;
        servedState = stateN.values as number[];
      }
    } finally {
      await session.release();
    }
  });

  it('the openWakeWord classifier over HTTP and gRPC: the score a direct run computes', async () => {
    const frames = embeddingFrames();
    const direct = await runDirect(WAKE_WORD, { [WAKE_WORD_INPUT]: new ort.Tensor('float32', frames.slice(), [1, 25, 96]) });
    const [outputName] = Object.keys(direct);
    const expected = direct[outputName!]!.data as Float32Array;

    const { status, body } = await postJson(`${server.url}/v2/models/wake_word/infer`, {
      inputs: [{ name: WAKE_WORD_INPUT, datatype: 'FP32', shape: [1, 25, 96], data: Array.from(frames) }],
    });
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.outputs[0].name, outputName);
    assert.deepEqual(body.outputs[0].shape, [1, 1]);
    assertMatches(body.outputs[0].data, expected, 'HTTP score');

    const served = await client.infer({ model_name: 'wake_word', inputs: [{ name: WAKE_WORD_INPUT, datatype: 'FP32', shape: [1, 25, 96], contents: { fp32_contents: Array.from(frames) } }] });
    const output = outputOf(served, outputName!);
    assert.deepEqual(output.tensor.shape.map(Number), [1, 1]);
    assertMatches(output.values as number[], expected, 'gRPC score');
  });
});
