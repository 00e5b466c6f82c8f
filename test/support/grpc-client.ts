import { TYPED_ARRAY_OF } from '../../src/domain/shared/datatype.js';
/**
 * A test client of the server's GRPCInferenceService, built from the server's own .proto files with
 * the server's proto-loader options: 64-bit integers arrive as decimal strings, enums by name, bytes
 * as Buffers, absent repeated fields as [] and maps as {}, a oneof's set field named by its group.
 * A field the server leaves unset arrives as undefined (`defaults: false`); one it sets arrives with
 * its value, even `false`, `0` or `''` (protobuf.js writes explicitly set scalars).
 */
import * as grpc from '@grpc/grpc-js';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import * as protoLoader from '@grpc/proto-loader';
import { INFERENCE_PACKAGE, INFERENCE_PROTO_FILE, INFERENCE_SERVICE, PROTO_LOADER_OPTIONS } from '../../src/infra/grpc/grpc-options.js';

const packageDefinition = protoLoader.loadSync(INFERENCE_PROTO_FILE, PROTO_LOADER_OPTIONS);
const inference = grpc.loadPackageDefinition(packageDefinition)[INFERENCE_PACKAGE] as grpc.GrpcObject;
const InferenceService = inference[INFERENCE_SERVICE] as grpc.ServiceClientConstructor;

export const Status = grpc.status;
export type Status = grpc.status;
export type ServiceError = grpc.ServiceError;

// ---- messages (as the client receives them; requests may use numbers for 64-bit fields) ------

export type Int64 = string | number;

export type InferParameter =
  | { bool_param: boolean }
  | { int64_param: Int64 }
  | { string_param: string }
  | { double_param: number }
  | { uint64_param: Int64 };

export interface TensorContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: Int64[];
  uint_contents?: number[];
  uint64_contents?: Int64[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Uint8Array[];
}

export interface InferInputTensor {
  name: string;
  datatype: string;
  shape: Int64[];
  parameters?: Record<string, InferParameter>;
  contents?: TensorContents;
}

export interface ModelInferRequest {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: Record<string, InferParameter>;
  inputs: InferInputTensor[];
  outputs?: { name: string; parameters?: Record<string, InferParameter> }[];
  raw_input_contents?: Uint8Array[];
}

export interface InferOutputTensor {
  name: string;
  datatype: string;
  shape: string[];
  parameters: Record<string, unknown>;
  contents?: {
    bool_contents: boolean[];
    int_contents: number[];
    int64_contents: string[];
    uint_contents: number[];
    uint64_contents: string[];
    fp32_contents: number[];
    fp64_contents: number[];
    bytes_contents: Buffer[];
  };
}

export interface ModelInferResponse {
  model_name: string;
  model_version: string;
  id?: string;
  parameters: Record<string, Record<string, unknown> & { parameter_choice: string }>;
  outputs: InferOutputTensor[];
  raw_output_contents: Buffer[];
}

export interface ModelStreamInferResponse {
  error_message?: string;
  infer_response?: ModelInferResponse;
}

export interface StatisticDuration {
  count?: string;
  ns?: string;
}

export interface ModelStatistics {
  name: string;
  version: string;
  last_inference?: string;
  inference_count?: string;
  execution_count?: string;
  inference_stats: Record<'success' | 'fail' | 'queue' | 'compute_input' | 'compute_infer' | 'compute_output' | 'cache_hit' | 'cache_miss', StatisticDuration | undefined>;
  batch_stats: { batch_size?: string; compute_input?: StatisticDuration; compute_infer?: StatisticDuration; compute_output?: StatisticDuration }[];
  memory_usage: unknown[];
}

export type RepositoryParameter = { bool_param: boolean } | { int64_param: Int64 } | { string_param: string } | { bytes_param: Uint8Array };

interface NameVersion {
  name: string;
  version?: string;
}

interface RepositoryModelRequest {
  repository_name?: string;
  model_name: string;
  parameters?: Record<string, RepositoryParameter>;
}

/** The unary methods: [request, response]. */
export interface UnaryMethods {
  ServerLive: [Record<string, never>, { live?: boolean }];
  ServerReady: [Record<string, never>, { ready?: boolean }];
  ModelReady: [NameVersion, { ready?: boolean }];
  ServerMetadata: [Record<string, never>, { name: string; version: string; extensions: string[] }];
  ModelMetadata: [NameVersion, { name: string; versions: string[]; platform: string; inputs: TensorMetadata[]; outputs: TensorMetadata[] }];
  ModelInfer: [ModelInferRequest, ModelInferResponse];
  ModelConfig: [NameVersion, { config: Record<string, any> }];
  ModelStatistics: [{ name?: string; version?: string }, { model_stats: ModelStatistics[] }];
  RepositoryIndex: [{ repository_name?: string; ready?: boolean }, { models: { name: string; version?: string; state?: string; reason?: string }[] }];
  RepositoryModelLoad: [RepositoryModelRequest, Record<string, never>];
  RepositoryModelUnload: [RepositoryModelRequest, Record<string, never>];
  SystemSharedMemoryStatus: [{ name?: string }, { regions: Record<string, { name: string; key: string; offset?: string; byte_size?: string }> }];
  SystemSharedMemoryRegister: [{ name: string; key: string; offset?: Int64; byte_size: Int64 }, Record<string, never>];
  SystemSharedMemoryUnregister: [{ name?: string }, Record<string, never>];
  CudaSharedMemoryStatus: [{ name?: string }, { regions: Record<string, unknown> }];
  CudaSharedMemoryRegister: [{ name: string; raw_handle?: Uint8Array; device_id?: Int64; byte_size?: Int64 }, Record<string, never>];
  CudaSharedMemoryUnregister: [{ name?: string }, Record<string, never>];
}

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: string[];
}

export interface CallOptions {
  /** Sent as `authorization: Bearer <token>` metadata. */
  readonly token?: string;
  /** Any other metadata. */
  readonly metadata?: Record<string, string>;
  /** The call's deadline, this many milliseconds from now. */
  readonly deadlineMs?: number;
}

/** A unary call in flight: its answer (rejecting with the ServiceError) and a way to cancel it. */
export interface PendingCall<T> {
  readonly response: Promise<T>;
  cancel(): void;
}

/** A ModelStreamInfer stream: write requests, read answers as they arrive, half-close, cancel. */
export interface InferStream {
  write(request: ModelInferRequest): void;
  /** Half-closes: no more requests; the server ends the stream after its last answer. */
  end(): void;
  cancel(): void;
  /** Answers in arrival order, so far. */
  readonly answers: ModelStreamInferResponse[];
  /** Resolves once `count` answers have arrived (rejects if the stream ends or fails first). */
  received(count: number): Promise<ModelStreamInferResponse[]>;
  /** Settles when the server ends the stream: with every answer, or the stream's error. */
  readonly finished: Promise<ModelStreamInferResponse[]>;
}

export class InferenceClient {
  private readonly client: grpc.Client;

  /**
   * `channelOptions`: e.g. `grpc.max_send_message_length` / `grpc.max_receive_message_length` (-1: no limit).
   * `credentials`: plaintext by default; {@link tlsCredentials} for TLS and mutual TLS.
   */
  constructor(address: string, channelOptions: grpc.ChannelOptions = {}, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure()) {
    this.client = new InferenceService(address, credentials, channelOptions);
  }

  /** A unary call: resolves with the answer, rejects with the ServiceError (`code`, `details`). */
  unary<M extends keyof UnaryMethods>(method: M, request: UnaryMethods[M][0], options: CallOptions = {}): Promise<UnaryMethods[M][1]> {
    return this.start(method, request, options).response;
  }

  /** A unary call that can be cancelled while in flight. */
  start<M extends keyof UnaryMethods>(method: M, request: UnaryMethods[M][0], options: CallOptions = {}): PendingCall<UnaryMethods[M][1]> {
    const fn = (this.client as unknown as Record<string, Function>)[method]!;
    let call!: grpc.ClientUnaryCall;
    const response = new Promise<UnaryMethods[M][1]>((resolve, reject) => {
      call = fn.call(this.client, request, metadataOf(options), callOptionsOf(options), (error: grpc.ServiceError | null, answer: UnaryMethods[M][1]) =>
        error ? reject(error) : resolve(answer),
      );
    });
    return { response, cancel: () => call.cancel() };
  }

  infer(request: ModelInferRequest, options?: CallOptions): Promise<ModelInferResponse> {
    return this.unary('ModelInfer', request, options);
  }

  /** ModelInfer with the initial metadata the server sent before its answer (e.g. `x-model-version`). */
  inferWithMetadata(request: ModelInferRequest, options: CallOptions = {}): Promise<{ response: ModelInferResponse; metadata: Record<string, string[]> }> {
    return new Promise((resolve, reject) => {
      let metadata: Record<string, string[]> = {};
      const fn = (this.client as unknown as Record<string, Function>).ModelInfer!;
      const call: grpc.ClientUnaryCall = fn.call(this.client, request, metadataOf(options), callOptionsOf(options), (error: grpc.ServiceError | null, response: ModelInferResponse) =>
        error ? reject(error) : resolve({ response, metadata }),
      );
      call.on('metadata', (received: grpc.Metadata) => {
        metadata = Object.fromEntries(Object.entries(received.getMap()).map(([key]) => [key, received.get(key).map(String)]));
      });
    });
  }

  /** A ModelStreamInfer call as grpc-js gives it, nothing attached: a client that reads only when the test does. */
  rawStream(options: CallOptions = {}): grpc.ClientDuplexStream<ModelInferRequest, ModelStreamInferResponse> {
    return (this.client as unknown as { ModelStreamInfer: Function }).ModelStreamInfer(metadataOf(options), callOptionsOf(options));
  }

  stream(options: CallOptions = {}): InferStream {
    const call = (this.client as unknown as { ModelStreamInfer: Function }).ModelStreamInfer(metadataOf(options), callOptionsOf(options)) as grpc.ClientDuplexStream<
      ModelInferRequest,
      ModelStreamInferResponse
    >;
    const answers: ModelStreamInferResponse[] = [];
    const waiters: { count: number; resolve: (a: ModelStreamInferResponse[]) => void; reject: (e: Error) => void }[] = [];
    let failure: Error | undefined;
    const finished = new Promise<ModelStreamInferResponse[]>((resolve, reject) => {
      call.on('data', (answer: ModelStreamInferResponse) => {
        answers.push(answer);
        for (const waiter of waiters.filter((w) => answers.length >= w.count)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(answers.slice(0, waiter.count));
        }
      });
      call.on('error', (error) => {
        failure = error;
        for (const waiter of waiters.splice(0)) waiter.reject(error);
        reject(error);
      });
      call.on('end', () => {
        failure ??= new Error(`the stream ended after ${answers.length} answers`);
        for (const waiter of waiters.splice(0)) waiter.reject(failure);
        resolve(answers);
      });
    });
    // A test that does not await `finished` (it cancels) must not see an unhandled rejection.
    finished.catch(() => undefined);
    return {
      write: (request) => void call.write(request),
      end: () => call.end(),
      cancel: () => call.cancel(),
      answers,
      finished,
      received: (count) =>
        answers.length >= count
          ? Promise.resolve(answers.slice(0, count))
          : failure
            ? Promise.reject(failure)
            : new Promise((resolve, reject) => waiters.push({ count, resolve, reject })),
    };
  }

  close(): void {
    this.client.close();
  }
}

/**
 * TLS channel credentials: the CA the server's certificate must chain to, optionally a client
 * certificate and key (mutual TLS); `onServerCertificate` sees the server's certificate of each new
 * connection (grpc-js calls checkServerIdentity once per handshake).
 */
export function tlsCredentials(options: { ca: Buffer; cert?: Buffer; key?: Buffer; onServerCertificate?: (certificate: PeerCertificate) => void }): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(options.ca, options.key ?? null, options.cert ?? null, {
    checkServerIdentity: (host, certificate) => {
      options.onServerCertificate?.(certificate);
      return checkServerIdentity(host, certificate);
    },
  });
}

/** Channel options for a channel of its own: no sharing of connections with other clients (so a new client makes a new handshake). */
export const OWN_CONNECTION: grpc.ChannelOptions = { 'grpc.use_local_subchannel_pool': 1 };

function metadataOf(options: CallOptions): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (options.token !== undefined) metadata.set('authorization', `Bearer ${options.token}`);
  for (const [key, value] of Object.entries(options.metadata ?? {})) metadata.set(key, value);
  return metadata;
}

function callOptionsOf(options: CallOptions): grpc.CallOptions {
  return options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs };
}

// ---- raw tensor contents ---------------------------------------------------------------------

/** The little-endian bytes of a typed array (a copy), as raw_input_contents wants them. */
export function rawOf(values: ArrayBufferView): Buffer {
  return Buffer.from(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
}

/** BYTES elements in raw form: each a 4-byte little-endian length, then its bytes. */
export function rawBytes(elements: readonly (string | Uint8Array)[]): Buffer {
  return Buffer.concat(
    elements.flatMap((element) => {
      const bytes = typeof element === 'string' ? Buffer.from(element, 'utf8') : Buffer.from(element);
      const length = Buffer.alloc(4);
      length.writeUInt32LE(bytes.length);
      return [length, bytes];
    }),
  );
}

/** The elements of a raw BYTES output (throws if its length prefixes do not add up). */
export function decodeRawBytes(raw: Buffer): Buffer[] {
  const elements: Buffer[] = [];
  let offset = 0;
  while (offset < raw.length) {
    if (offset + 4 > raw.length) throw new Error(`a truncated length prefix at byte ${offset}`);
    const length = raw.readUInt32LE(offset);
    if (offset + 4 + length > raw.length) throw new Error(`element ${elements.length} says ${length} bytes, past the end`);
    elements.push(raw.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  return elements;
}


/** A raw output's elements: numbers, bigints (64-bit), booleans (BOOL), raw half-float bits (FP16), or strings (BYTES, as UTF-8). */
export function decodeRaw(datatype: string, raw: Buffer): unknown[] {
  if (datatype === 'BYTES') return decodeRawBytes(raw).map((bytes) => bytes.toString('utf8'));
  const ArrayType = TYPED_ARRAY_OF[datatype as keyof typeof TYPED_ARRAY_OF];
  if (!ArrayType) throw new Error(`no raw decoding for ${datatype}`);
  if (raw.length % ArrayType.BYTES_PER_ELEMENT !== 0) throw new Error(`${raw.length} bytes are not whole ${datatype} elements`);
  const copy = new Uint8Array(raw);
  const values = Array.from(new ArrayType(copy.buffer) as ArrayLike<number | bigint>);
  return datatype === 'BOOL' ? values.map((v) => v !== 0) : values;
}

/** The output named `name` of an answer, with its elements decoded from whichever form it came in. */
export function outputOf(response: ModelInferResponse, name: string): { tensor: InferOutputTensor; form: 'typed' | 'raw'; values: unknown[] } {
  const index = response.outputs.findIndex((output) => output.name === name);
  if (index < 0) throw new Error(`no output '${name}' in ${response.outputs.map((o) => o.name).join(', ')}`);
  const tensor = response.outputs[index]!;
  if (response.raw_output_contents.length > 0) return { tensor, form: 'raw', values: decodeRaw(tensor.datatype, response.raw_output_contents[index]!) };
  const contents = tensor.contents ?? ({} as NonNullable<InferOutputTensor['contents']>);
  const filled = Object.values(contents).filter((values) => Array.isArray(values) && values.length > 0);
  if (filled.length > 1) throw new Error(`output '${name}' fills ${filled.length} contents fields`);
  return { tensor, form: 'typed', values: (filled[0] ?? []) as unknown[] };
}
