/**
 * The gRPC side of the bench (target 6): the KServe V2 / Triton service loaded from the server's
 * own .proto files with the server's proto-loader options, a ModelInfer request for the demo
 * classifier in the raw form Triton's clients send (`raw_input_contents`, little-endian), the check
 * of its answer, and how an answer travels to the bare gRPC server (JSON, Buffers as
 * {type: 'Buffer', data}). Used by the bench, bench/bare-grpc-server.ts and bench/grpc-load.ts.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { setTimeout as sleep } from 'node:timers/promises';
import { INFERENCE_PACKAGE, INFERENCE_PROTO_FILE, INFERENCE_SERVICE, PROTO_LOADER_OPTIONS } from '../src/infra/grpc/grpc-options.js';
import type { Child } from './processes.js';
import type { LatencySummary } from './stats.js';
import { CLASSIFIER, CLASSIFIER_SAMPLE } from './workloads.js';

const packageDefinition = protoLoader.loadSync(INFERENCE_PROTO_FILE, PROTO_LOADER_OPTIONS);
const inference = grpc.loadPackageDefinition(packageDefinition)[INFERENCE_PACKAGE] as grpc.GrpcObject;

/** The client constructor of inference.GRPCInferenceService; `.service` is its definition, for a server. */
export const InferenceService = inference[INFERENCE_SERVICE] as grpc.ServiceClientConstructor;
/** ModelInfer's path and (de)serializers, as proto-loader built them. */
export const MODEL_INFER = InferenceService.service['ModelInfer']!;

const credentials = grpc.credentials.createInsecure();

export function inferenceClient(address: string, options: grpc.ChannelOptions = {}): grpc.Client {
  return new InferenceService(address, credentials, options);
}

/** A unary call by method name, with a deadline. */
export function unary<T>(client: grpc.Client, method: string, request: object, timeoutMs: number): Promise<T> {
  const fn = (client as unknown as Record<string, unknown>)[method];
  if (typeof fn !== 'function') throw new Error(`no gRPC method ${method}`);
  return new Promise<T>((resolve, reject) => {
    const callback = (error: grpc.ServiceError | null, response: T): void => (error ? reject(error) : resolve(response));
    (fn as (...args: unknown[]) => unknown).call(client, request, { deadline: Date.now() + timeoutMs }, callback);
  });
}

// ---- messages --------------------------------------------------------------------------------

export interface ModelInferResponse {
  model_name?: string;
  model_version?: string;
  id?: string;
  parameters?: Record<string, unknown>;
  outputs?: { name: string; datatype: string; shape: string[]; contents?: unknown }[];
  raw_output_contents?: Buffer[];
}

/** ModelInfer of one classifier sample [1, 4] FP32, raw: 16 bytes of little-endian float32, no `contents`. */
export function classifierGrpcRequest(): object {
  const raw = Buffer.alloc(4 * CLASSIFIER_SAMPLE.length);
  CLASSIFIER_SAMPLE.forEach((value, i) => raw.writeFloatLE(value, 4 * i));
  return {
    model_name: CLASSIFIER,
    inputs: [{ name: 'input', datatype: 'FP32', shape: ['1', String(CLASSIFIER_SAMPLE.length)] }],
    raw_input_contents: [raw],
  };
}

/**
 * A correct classifier answer to classifierGrpcRequest: `probabilities` FP32 [1, 3] summing to ~1
 * and `label` INT64 [1] = 0, both in raw_output_contents (one little-endian Buffer per output).
 */
export function checkClassifierGrpcAnswer(answer: ModelInferResponse, from: string): void {
  const fail = (why: string): never => {
    throw new Error(`unexpected classifier answer from ${from} (${why}): ${answerToJson(answer).slice(0, 1000)}`);
  };
  const outputs = answer.outputs ?? [];
  const raw = answer.raw_output_contents ?? [];
  if (raw.length !== outputs.length) fail(`${outputs.length} outputs but ${raw.length} raw_output_contents`);
  const at = (name: string): { datatype: string; shape: string; bytes: Buffer } => {
    const i = outputs.findIndex((o) => o.name === name);
    if (i < 0) fail(`no output ${name}`);
    if (outputs[i]!.contents !== undefined) fail(`output ${name} has typed contents, not raw`);
    return { datatype: outputs[i]!.datatype, shape: outputs[i]!.shape.join(), bytes: raw[i]! };
  };
  const probabilities = at('probabilities');
  const label = at('label');
  if (probabilities.datatype !== 'FP32' || probabilities.shape !== '1,3' || probabilities.bytes.length !== 12) fail('probabilities is not FP32 [1,3]');
  if (label.datatype !== 'INT64' || label.shape !== '1' || label.bytes.length !== 8) fail('label is not INT64 [1]');
  const p = [0, 1, 2].map((i) => probabilities.bytes.readFloatLE(4 * i));
  if (p.some((v) => !(v >= 0 && v <= 1)) || Math.abs(p[0]! + p[1]! + p[2]! - 1) > 1e-3) fail(`probabilities ${p.join(', ')}`);
  if (label.bytes.readBigInt64LE(0) !== 0n) fail(`label ${label.bytes.readBigInt64LE(0)}`);
}

/** One ModelInfer outside the load: checks the answer (see checkClassifierGrpcAnswer) and returns it. */
export async function checkedClassifierGrpcInfer(address: string): Promise<ModelInferResponse> {
  const client = inferenceClient(address);
  try {
    const answer = await unary<ModelInferResponse>(client, 'ModelInfer', classifierGrpcRequest(), 30_000);
    checkClassifierGrpcAnswer(answer, address);
    return answer;
  } finally {
    client.close();
  }
}

/** A message as JSON: Buffers (bytes fields) become {type: 'Buffer', data: [...]}, undone by answerFromJson. */
export function answerToJson(answer: object): string {
  return JSON.stringify(answer);
}

export function answerFromJson(json: string): ModelInferResponse {
  return JSON.parse(json, (_key, value: unknown) => {
    const buffer = value as { type?: unknown; data?: unknown } | null;
    return typeof buffer === 'object' && buffer !== null && buffer.type === 'Buffer' && Array.isArray(buffer.data) ? Buffer.from(buffer.data as number[]) : value;
  }) as ModelInferResponse;
}

// ---- readiness -------------------------------------------------------------------------------

/** Calls ServerReady until it answers ready; fails early if the child exits, or after `timeoutMs`. */
export async function waitForGrpcReady(address: string, child: Child, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited: number | string | undefined;
  void child.exited.then((code) => (exited = code));
  const client = inferenceClient(address);
  let last = 'no answer';
  try {
    while (Date.now() < deadline) {
      if (exited !== undefined) throw new Error(`${child.name} exited (${exited}) before gRPC was ready:\n${child.stderrTail()}`);
      try {
        const { ready } = await unary<{ ready?: boolean }>(client, 'ServerReady', {}, 1000);
        if (ready === true) return;
        last = 'ServerReady answered not ready';
      } catch (error) {
        last = (error as Error).message; // not listening yet
      }
      await sleep(100);
    }
  } finally {
    client.close();
  }
  throw new Error(`${child.name} was not ready over gRPC at ${address} within ${timeoutMs} ms (${last}):\n${child.stderrTail()}`);
}

// ---- load ------------------------------------------------------------------------------------

/** What bench/grpc-load.ts prints last: the measured window of one closed-loop gRPC load. */
export interface GrpcLoadResult extends LatencySummary {
  /** OK answers per second of the measured window (latencies are of the OK answers too). */
  readonly requestsPerSecond: number;
  /** OK answers in the measured window. */
  readonly requests: number;
  readonly durationSeconds: number;
  /** Calls that ended with another status in the window, in all and by status name (DEADLINE_EXCEEDED: timeouts). */
  readonly errors: number;
  readonly errorsByStatus: Record<string, number>;
  /** Calls of the warm-up that did not end OK (not in `errors`). */
  readonly warmupErrors: number;
  /** Calls in flight at once, and the channels (HTTP/2 connections) they were spread over. */
  readonly concurrency: number;
  readonly channels: number;
  /** Size of the serialized ModelInferRequest. */
  readonly requestBytes: number;
}
