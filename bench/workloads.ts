/**
 * What the bench sends and to which models: the demo classifier (small: the HTTP-bound case) and
 * the MLP (compute-heavy), with the model repository and Triton configs of the MLP runs.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MLP_INPUT, MLP_LAYER_SIZES, MLP_OUTPUT, mlpModel } from '../scripts/build-models.js';

interface InferAnswer {
  parameters?: Record<string, unknown>;
  outputs?: { name: string; shape: number[]; datatype: string; data: unknown[] }[];
}

async function post(url: string, body: string, headers: Readonly<Record<string, string>> = {}): Promise<{ text: string; answer: InferAnswer; headers: Headers }> {
  const response = await fetch(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(30_000) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${url} answered ${response.status}: ${text}`);
  return { text, answer: JSON.parse(text) as InferAnswer, headers: response.headers };
}

/** A binary-extension request whose answer is all JSON (no output asked as binary data). */
async function postBinary(url: string, request: BinaryBody): Promise<{ text: string; answer: InferAnswer; headers: Headers }> {
  const response = await fetch(url, { method: 'POST', headers: request.headers, body: request.body, signal: AbortSignal.timeout(30_000) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${url} answered ${response.status}: ${text}`);
  return { text, answer: JSON.parse(text) as InferAnswer, headers: response.headers };
}

// ---- the demo classifier ---------------------------------------------------------------------

export const CLASSIFIER = 'classifier';
/** One iris sample; the classifier labels it 0. */
export const CLASSIFIER_SAMPLE = [5.1, 3.5, 1.4, 0.2];

export function classifierBody(batch = 1): string {
  const data = Array.from({ length: batch }, () => CLASSIFIER_SAMPLE).flat();
  return JSON.stringify({ inputs: [{ name: 'input', shape: [batch, 4], datatype: 'FP32', data }] });
}

/** One request outside the load (with `headers` besides content-type): checks the answer is a correct classifier answer and returns its text and headers. */
export async function checkedClassifierAnswer(url: string, headers: Readonly<Record<string, string>> = {}): Promise<{ text: string; headers: Headers }> {
  const { text, answer, headers: answerHeaders } = await post(url, classifierBody(), headers);
  const probabilities = answer.outputs?.find((o) => o.name === 'probabilities');
  const label = answer.outputs?.find((o) => o.name === 'label');
  if (probabilities?.shape.join() !== '1,3' || label?.shape.join() !== '1' || label.data[0] !== 0) {
    throw new Error(`unexpected classifier answer from ${url}: ${text}`);
  }
  return { text, headers: answerHeaders };
}

/** Triton's binary tensor extension: the header naming the JSON part's length. */
export const INFERENCE_HEADER = 'inference-header-content-length';

/** A body of Triton's binary tensor extension: a JSON header, then each input's raw little-endian bytes in input order. */
export interface BinaryBody {
  readonly body: Buffer;
  /** The request's headers: the JSON header's length, and the content type tritonclient sends. */
  readonly headers: Readonly<Record<string, string>>;
}

function binaryBody(header: object, raw: Buffer): BinaryBody {
  const json = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([json, raw]), headers: { [INFERENCE_HEADER]: String(json.length), 'content-type': 'application/octet-stream' } };
}

/** The classifier's sample as tritonclient sends it by default: the input's 16 bytes after the JSON, both outputs asked as binary data. */
export function classifierBinaryBody(): BinaryBody {
  const raw = Buffer.from(new Float32Array(CLASSIFIER_SAMPLE).buffer);
  return binaryBody(
    {
      inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', parameters: { binary_data_size: raw.length } }],
      outputs: [
        { name: 'label', parameters: { binary_data: true } },
        { name: 'probabilities', parameters: { binary_data: true } },
      ],
    },
    raw,
  );
}

/** One binary request outside the load: the answer's JSON header must say label [1] (INT64) and probabilities [1,3] as binary data, and the label's 8 bytes 0. Returns the answer's bytes and headers. */
export async function checkedClassifierBinaryAnswer(url: string): Promise<{ body: Buffer; headers: Headers }> {
  const { body, headers } = classifierBinaryBody();
  const response = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(30_000) });
  const bytes = Buffer.from(await response.arrayBuffer());
  const jsonLength = Number(response.headers.get(INFERENCE_HEADER));
  if (response.status !== 200 || !Number.isInteger(jsonLength)) throw new Error(`${url} answered ${response.status} to a binary request: ${bytes.toString('utf8', 0, 500)}`);
  const answer = JSON.parse(bytes.toString('utf8', 0, jsonLength)) as { outputs?: { name: string; shape: number[]; parameters?: { binary_data_size?: number } }[] };
  let offset = jsonLength;
  let label: bigint | undefined;
  for (const output of answer.outputs ?? []) {
    const size = output.parameters?.binary_data_size ?? 0;
    if (output.name === 'label' && size === 8) label = bytes.readBigInt64LE(offset);
    offset += size;
  }
  if (label !== 0n || offset !== bytes.length) throw new Error(`unexpected binary classifier answer from ${url}: ${bytes.toString('utf8', 0, jsonLength)}`);
  return { body: bytes, headers: response.headers };
}

/** {@link checkedClassifierAnswer}'s text. */
export async function checkedClassifierInfer(url: string): Promise<string> {
  return (await checkedClassifierAnswer(url)).text;
}

// ---- the MLP ---------------------------------------------------------------------------------

export const MLP_FEATURES = MLP_LAYER_SIZES[0];
export const MLP_CLASSES = MLP_LAYER_SIZES[MLP_LAYER_SIZES.length - 1]!;
export { MLP_INPUT, MLP_OUTPUT };

/** The MLP's Triton config in the bench: batching on. */
export const MLP_BATCHING = 'mlp';
/** The same model and config with max_batch_size 1: batching off. */
export const MLP_NO_BATCHING = 'mlp_no_batching';
export const MLP_MAX_BATCH_SIZE = 32;
export const MLP_MAX_QUEUE_DELAY_MICROS = 2000;
export const MLP_MAX_QUEUE_SIZE = 64;

/** One input row of `features` fixed values in [-1, 1] with three decimals, like a normalised feature vector. */
export function sampleRow(features: number): number[] {
  return Array.from({ length: features }, (_, i) => Math.round(Math.sin(i * 12.9898 + 1) * 1000) / 1000);
}

export function mlpBody(): string {
  return JSON.stringify({ inputs: [{ name: MLP_INPUT, shape: [1, MLP_FEATURES], datatype: 'FP32', data: sampleRow(MLP_FEATURES) }] });
}

/** The MLP's batch-1 request with its 512 FP32 values as binary data (the logits answered as JSON, as in {@link mlpBody}). */
export function mlpBinaryBody(): BinaryBody {
  const raw = Buffer.from(new Float32Array(sampleRow(MLP_FEATURES)).buffer);
  return binaryBody({ inputs: [{ name: MLP_INPUT, shape: [1, MLP_FEATURES], datatype: 'FP32', parameters: { binary_data_size: raw.length } }] }, raw);
}

/**
 * The MLP's config.json: Triton's dynamic batching with a bounded queue, one CPU instance with
 * `threads` intra-op threads, adaptive queue delay. Batching is on when maxBatchSize > 1; the
 * batching-off model differs only in max_batch_size.
 */
export function mlpConfig(maxBatchSize: number, threads: number): object {
  return {
    max_batch_size: maxBatchSize,
    dynamic_batching: {
      max_queue_delay_microseconds: MLP_MAX_QUEUE_DELAY_MICROS,
      default_queue_policy: {
        max_queue_size: MLP_MAX_QUEUE_SIZE,
        timeout_action: 'REJECT',
        default_timeout_microseconds: 0,
        allow_timeout_override: true,
      },
    },
    instance_group: [{ count: 1, kind: 'KIND_CPU' }],
    parameters: {
      intra_op_thread_count: { string_value: String(threads) },
      adaptive_queue_delay: { string_value: '1' },
    },
  };
}

/** Writes <dir>/{mlp, mlp_no_batching}/{config.json, 1/model.onnx}; returns the path of the model file (the same bytes in both). */
export async function writeMlpRepository(dir: string, threads: number): Promise<string> {
  const model = mlpModel();
  for (const [name, maxBatchSize] of [[MLP_BATCHING, MLP_MAX_BATCH_SIZE], [MLP_NO_BATCHING, 1]] as const) {
    const modelFile = path.join(dir, name, '1', 'model.onnx');
    await mkdir(path.dirname(modelFile), { recursive: true });
    await writeFile(modelFile, model);
    await writeFile(path.join(dir, name, 'config.json'), `${JSON.stringify(mlpConfig(maxBatchSize, threads), null, 2)}\n`);
  }
  return path.join(dir, MLP_BATCHING, '1', 'model.onnx');
}

/**
 * One request outside the load: the answer must be logits [1, 10] equal (within float rounding)
 * to `expected`, the bare runtime's output for the same row.
 */
export async function checkedMlpInfer(url: string, expected: readonly number[], request: BinaryBody | string = mlpBody()): Promise<void> {
  const { text, answer } = typeof request === 'string' ? await post(url, request) : await postBinary(url, request);
  const logits = answer.outputs?.find((o) => o.name === MLP_OUTPUT);
  if (logits?.shape.join() !== `1,${MLP_CLASSES}` || logits.datatype !== 'FP32') throw new Error(`unexpected MLP answer from ${url}: ${text.slice(0, 500)}`);
  const values = logits.data.flat(2) as number[];
  const off = values.findIndex((v, i) => !(Math.abs(v - expected[i]!) <= 1e-4 + 1e-4 * Math.abs(expected[i]!)));
  if (values.length !== expected.length || off >= 0) {
    throw new Error(`the server's MLP answer differs from the bare runtime's at element ${off}: ${JSON.stringify(values)} vs ${JSON.stringify(expected)}`);
  }
  if (typeof answer.parameters?.batch_size !== 'number') throw new Error(`the MLP answer has no parameters.batch_size: ${text.slice(0, 500)}`);
}
