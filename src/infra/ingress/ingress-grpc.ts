import { createServer, type Server as NetServer } from 'node:net';
import {
  Client,
  credentials as clientCredentials,
  Metadata,
  Server,
  ServerCredentials,
  type ClientDuplexStream,
  type ClientReadableStream,
  type ClientWritableStream,
  type sendUnaryData,
  type ServerDuplexStream,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import type { MethodDefinition, PackageDefinition } from '@grpc/proto-loader';
import type { Logger } from 'pino';
import { requestedVersion } from '../../domain/registry/model-name.js';
import type { CancellationSignal } from '../../domain/inference/dynamic-batch-scheduler.js';
import type { InferenceResponse } from '../../domain/inference/inference-request.js';
import type { AppConfig } from '../config/app-config.js';
import { callCancellation, metadataRecord, metadataValue, microsUntilDeadline, peerAddress } from '../grpc/call-context.js';
import { grpcAccessLine } from '../grpc/grpc-access-line.js';
import { INGRESS_SAMPLED_HEADER, type IngressSampling } from '../tracing/ingress-sampling.js';
import { grpcChannelOptions, INFERENCE_PACKAGE, INFERENCE_SERVICE, loadServingDefinition } from '../grpc/grpc-options.js';
import { encodeModelInferResponse, readModelInferRequest } from '../grpc/infer-message.codec.js';
import { namedModel } from '../grpc/malformed-request.js';
import type { ModelInferRequestMessage } from '../grpc/inference-messages.js';
import { MODEL_VERSION_HEADER } from '../transport/model-version-header.js';
import { grpcErrorOf } from '../transport/error-response.filter.js';
import type { ServerTls } from '../tls/server-tls.js';
import { capConnectionsAcrossThreads, type SharedConnectionCount } from '../http/shared-connection-cap.js';
import { FORWARDED_FOR } from './forward-to-main.js';
import { HAND_OVER, NO_SHARED_MEMORY } from './hand-over.js';
import type { DeclaredRequest, ForwardedInfer } from './ingress-messages.js';

/** What the gRPC side of an ingress thread asks of the thread (the main thread's channel). */
export interface MainThreadChannel {
  /** Runs a decoded request; resolves 'hand over' when the main thread must serve the call itself (a generative model). */
  run(transport: 'grpc', command: ForwardedInfer['command'], address: string, signal: CancellationSignal): Promise<{ response: InferenceResponse } | 'hand over'>;
  /** Decodes a request, judged by the main thread first when it is large (its refusal thrown). */
  decodeJudged<T>(model: string, declared: DeclaredRequest, bytes: number, decode: () => T): Promise<T>;
  /** What to answer for an error of a request: the main thread's judgement of it, unless it was judged already. */
  refusalOf(model: string, declared: DeclaredRequest | undefined, error: unknown): Promise<Error>;
  /** The refusal of a request to this model and version because its queue is full (the refusal board), if any: judged, and counted. */
  queueRefusal(model: string, version: string | undefined): Error | undefined;
}

const MODEL_INFER = `/${INFERENCE_PACKAGE}.${INFERENCE_SERVICE}/ModelInfer`;
const identity = (value: Buffer) => value;
/** A handler of any kind (unary, streams), as grpc-js' `register` takes it whatever its kind. */
type AnyHandler = (call: never, callback: never) => void;

/**
 * The gRPC side of an ingress thread. A `reusePort` listener on GRPC_PORT per thread hands each
 * accepted socket to this thread's grpc-js server (its connection injector: grpc-js cannot bind a
 * port with reusePort itself), with the serving port's limits, keepalive and TLS. `ModelInfer` is
 * decoded here and run by the main thread, as HTTP's infer; every other method (streams
 * included) is forwarded as bytes to the main thread's own gRPC server on its private socket, with
 * the client's address as `x-forwarded-for` metadata, its deadline and its cancellation.
 */
export async function serveGrpc(
  config: AppConfig,
  tls: ServerTls,
  options: { port: number; mainGrpcSocket: string; maxConnections: number; sharedCount: SharedConnectionCount; sampling?: IngressSampling },
  main: MainThreadChannel,
  log: Logger,
): Promise<{ port: number; close(): Promise<void> }> {
  const definition = loadServingDefinition();
  const server = new Server(grpcChannelOptions(config));
  const upstream = new Client(`unix:${options.mainGrpcSocket}`, clientCredentials.createInsecure(), { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 });
  for (const [path, method] of methodsOf(definition)) {
    if (path === MODEL_INFER) {
      // A handed-over call's answer arrives as the main thread's bytes; this thread's own answers are messages.
      const serialize = (value: unknown) => (Buffer.isBuffer(value) ? value : (method.responseSerialize as (message: unknown) => Buffer)(value));
      server.register(path, modelInfer(method, upstream, main, log, options.sampling) as never, serialize, identity, 'unary');
    } else {
      server.register(path, forwarded(path, method, upstream) as never, identity, identity, kindOf(method));
    }
  }
  const injector = server.createConnectionInjector(tls.grpcCredentials() ?? ServerCredentials.createInsecure());
  const listener: NetServer = createServer((socket) => injector.injectConnection(socket));
  capConnectionsAcrossThreads(listener, options.sharedCount, options.maxConnections);
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    // reusePort (Linux): every thread binds the port; the kernel spreads new connections over them.
    listener.listen({ port: options.port, host: config.HOST, reusePort: true }, () => resolve());
  });
  const address = listener.address();
  return {
    port: typeof address === 'object' && address ? address.port : options.port,
    close: async () => {
      // The listener stops accepting now, and is closed once its connections are: those grpc-js
      // closes (idle ones at once, the others when their calls end), which is what is waited for.
      const listenerClosed = new Promise<void>((resolve) => listener.close(() => resolve()));
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      injector.destroy();
      upstream.close();
      await listenerClosed;
    },
  };
}

function* methodsOf(definition: PackageDefinition): Generator<[string, MethodDefinition<object, object>]> {
  for (const service of Object.values(definition)) {
    if (!('format' in service) && typeof service === 'object') {
      for (const method of Object.values(service as Record<string, MethodDefinition<object, object>>)) if (method?.path) yield [method.path, method];
    }
  }
}

function kindOf(method: MethodDefinition<object, object>): 'unary' | 'serverStream' | 'clientStream' | 'bidi' {
  if (method.requestStream) return method.responseStream ? 'bidi' : 'clientStream';
  return method.responseStream ? 'serverStream' : 'unary';
}

/**
 * The call's metadata for the main thread: the client's address as the only x-forwarded-for, and
 * INGRESS_SAMPLED_HEADER only when this thread drew the call's new trace sampled (a client's own of
 * either is dropped).
 */
function forwardedMetadata(call: { metadata: Metadata; getPeer(): string }, sampled: boolean): Metadata {
  const metadata = call.metadata.clone();
  metadata.set(FORWARDED_FOR, peerAddress(call));
  if (sampled) metadata.set(INGRESS_SAMPLED_HEADER, '1');
  else metadata.remove(INGRESS_SAMPLED_HEADER);
  return metadata;
}

/** A method the main thread serves, forwarded as bytes both ways (unary, streams), with its deadline and cancellation. */
function forwarded(path: string, method: MethodDefinition<object, object>, upstream: Client, sampled = false): AnyHandler {
  const callOptions = (call: { getDeadline(): Date | number }) => ({ deadline: call.getDeadline() });
  const settle = (downstream: { emit(event: 'error', error: unknown): boolean; end(metadata?: Metadata): void }) => (error: ServiceError | null, trailers?: Metadata) =>
    error ? downstream.emit('error', error) : downstream.end(trailers);
  switch (kindOf(method)) {
    case 'unary':
      return (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        const out = upstream.makeUnaryRequest(path, identity, identity, call.request, forwardedMetadata(call, sampled), callOptions(call), (error, value) => callback(error, value));
        out.on('metadata', (metadata: Metadata) => call.sendMetadata(metadata));
        call.on('cancelled', () => out.cancel());
      };
    case 'serverStream':
      return (call: ServerWritableStream<Buffer, Buffer>) => {
        const out: ClientReadableStream<Buffer> = upstream.makeServerStreamRequest(path, identity, identity, call.request, forwardedMetadata(call, sampled), callOptions(call));
        pipeAnswers(out, call, settle(call));
      };
    case 'clientStream':
      return (call: ServerReadableStream<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        const out: ClientWritableStream<Buffer> = upstream.makeClientStreamRequest(path, identity, identity, forwardedMetadata(call, sampled), callOptions(call), (error, value) => callback(error, value));
        out.on('metadata', (metadata: Metadata) => call.sendMetadata(metadata));
        pipeRequests(call, out);
      };
    case 'bidi':
      return (call: ServerDuplexStream<Buffer, Buffer>) => {
        const out: ClientDuplexStream<Buffer, Buffer> = upstream.makeBidiStreamRequest(path, identity, identity, forwardedMetadata(call, sampled), callOptions(call));
        pipeRequests(call, out);
        pipeAnswers(out, call, settle(call));
      };
  }
}

/** The client's messages to the main thread, pausing the client when the main thread's side is full. */
function pipeRequests(call: ServerReadableStream<Buffer, Buffer> | ServerDuplexStream<Buffer, Buffer>, out: ClientWritableStream<Buffer> | ClientDuplexStream<Buffer, Buffer>): void {
  call.on('data', (message: Buffer) => {
    if (!out.write(message)) call.pause();
  });
  out.on('drain', () => call.resume());
  call.on('end', () => out.end());
  call.on('cancelled', () => out.cancel());
}

/** The main thread's answers to the client, pausing the main thread's side when the client reads slowly; its status ends the call. */
function pipeAnswers(
  out: ClientReadableStream<Buffer> | ClientDuplexStream<Buffer, Buffer>,
  call: ServerWritableStream<Buffer, Buffer> | ServerDuplexStream<Buffer, Buffer>,
  settle: (error: ServiceError | null, trailers?: Metadata) => void,
): void {
  out.on('metadata', (metadata: Metadata) => call.sendMetadata(metadata));
  out.on('data', (message: Buffer) => {
    if (!call.write(message)) out.pause();
  });
  call.on('drain', () => out.resume());
  call.on('cancelled', () => out.cancel());
  out.on('error', (error: ServiceError) => settle(error));
  // The status may come before the last answers are read (the stream paused for a slow client):
  // the call ends once both its answers and its status are in.
  let ended = false;
  let trailers: Metadata | undefined;
  const finish = () => ended && trailers && settle(null, trailers);
  out.on('end', () => {
    ended = true;
    finish();
  });
  out.on('status', (status: { code: number; metadata: Metadata }) => {
    if (status.code !== 0) return; // answered by 'error'
    trailers = status.metadata;
    finish();
  });
}

/**
 * `ModelInfer`, decoded on this thread and run on the main thread (which judges it, as the gRPC
 * controller does, and counts it); a call that reads or writes shared memory, asks a generative
 * model, or is to be traced (`sampling`: tracing is on), is forwarded whole. Logged as the main
 * thread logs a call.
 */
function modelInfer(
  method: MethodDefinition<object, object>,
  upstream: Client,
  main: MainThreadChannel,
  log: Logger,
  sampling: IngressSampling | undefined,
): (call: ServerUnaryCall<Buffer, unknown>, callback: sendUnaryData<unknown>) => void {
  type Forward = (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => void;
  const forward = forwarded(MODEL_INFER, method, upstream) as Forward;
  const forwardSampled = forwarded(MODEL_INFER, method, upstream, true) as Forward;
  const decode = method.requestDeserialize as (bytes: Buffer) => ModelInferRequestMessage;
  return (call, callback) => {
    const traced = sampling?.decide((name) => metadataValue(call.metadata, name));
    if (traced && traced !== 'serve') {
      (traced === 'forward sampled' ? forwardSampled : forward)(call as ServerUnaryCall<Buffer, Buffer>, callback as sendUnaryData<Buffer>);
      return;
    }
    const started = performance.now();
    const answer = (error: Error | null, response?: { model_name?: string; model_version?: string; parameters?: Record<string, { int64_param?: string | number }> }) => {
      const status = error ? grpcErrorOf(error) : undefined;
      const { level, line } = grpcAccessLine(MODEL_INFER, status?.code ?? 0, started, response, {}, error ?? undefined);
      log[level](line);
      if (status) callback(status);
      else callback(null, response);
    };
    const handOver = () => forward(call as ServerUnaryCall<Buffer, Buffer>, callback as sendUnaryData<Buffer>);
    let command: ForwardedInfer['command'];
    let declared: DeclaredRequest | undefined;
    let form;
    const process = async (): Promise<void> => {
      const message = decode(call.request);
      // A full queue refuses before the tensors are read, as HTTP refuses before the body is read.
      const model = namedModel(message);
      const full = model === undefined ? undefined : main.queueRefusal(model, message.model_version || undefined);
      if (full) throw full;
      const envelope = readModelInferRequest(message);
      const version = requestedVersion(envelope.modelVersion);
      declared = { version, inputs: envelope.inputs, requestedOutputs: envelope.requestedOutputs };
      const decoded = await main.decodeJudged(envelope.modelName, declared, call.request.length, () => envelope.decode(NO_SHARED_MEMORY));
      if (decoded.sharedMemoryOutputs.size > 0) throw HAND_OVER;
      form = decoded.responseForm;
      command = { modelName: decoded.modelName, version, request: decoded.request, timeoutMicros: microsUntilDeadline(call), headers: metadataRecord(call.metadata) };
    };
    const runOnMain = () =>
      main.run('grpc', command!, peerAddress(call), callCancellation(call)).then(
        (result) => {
          if (result === 'hand over') return handOver();
          const metadata = new Metadata();
          metadata.set(MODEL_VERSION_HEADER, result.response.modelVersion);
          call.sendMetadata(metadata);
          answer(null, encodeModelInferResponse(result.response, form!));
        },
        (error: Error) => answer(error),
      );
    process().then(
      () => runOnMain(),
      async (error: unknown) => {
        if (error === HAND_OVER) return handOver();
        answer(await main.refusalOf(safeModelName(call.request, decode), declared, error));
      },
    );
  };
}

/** The model a message names, for judging its refusal ('' when it is not a valid message: then nothing names a model). */
function safeModelName(bytes: Buffer, decode: (bytes: Buffer) => ModelInferRequestMessage): string {
  try {
    return namedModel(decode(bytes)) ?? '';
  } catch {
    return '';
  }
}
