import { once } from 'node:events';
import { connect, constants, type IncomingHttpHeaders } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { INFERENCE_PACKAGE, INFERENCE_PROTO_FILE, INFERENCE_SERVICE, PROTO_LOADER_OPTIONS } from '../../src/infra/grpc/grpc-options.js';
import type { ModelInferRequest, ModelStreamInferResponse } from './grpc-client.js';

/**
 * A gRPC call on bare `node:http2`, for frames a gRPC library would never send (as bench/grpc-load.ts
 * drives the server): a POST of the given bytes to the method's path, the status read from the
 * trailers, or from the headers of a trailers-only answer.
 */

export const MODEL_INFER_PATH = `/${INFERENCE_PACKAGE}.${INFERENCE_SERVICE}/ModelInfer`;
export const MODEL_STREAM_INFER_PATH = `/${INFERENCE_PACKAGE}.${INFERENCE_SERVICE}/ModelStreamInfer`;

const service = grpc.loadPackageDefinition(protoLoader.loadSync(INFERENCE_PROTO_FILE, PROTO_LOADER_OPTIONS))[INFERENCE_PACKAGE] as grpc.GrpcObject;
const modelInfer = (service[INFERENCE_SERVICE] as grpc.ServiceClientConstructor).service.ModelInfer!;
const modelStreamInfer = (service[INFERENCE_SERVICE] as grpc.ServiceClientConstructor).service.ModelStreamInfer!;

/** A ModelStreamInferResponse from its protobuf bytes. */
export function deserializeModelStreamInferResponse(bytes: Buffer): ModelStreamInferResponse {
  return modelStreamInfer.responseDeserialize(bytes) as ModelStreamInferResponse;
}

/** The messages of a gRPC body (length-prefixed frames), and the bytes of an incomplete last frame. */
export function splitGrpcFrames(body: Buffer): { messages: Buffer[]; rest: Buffer } {
  const messages: Buffer[] = [];
  let offset = 0;
  while (body.length - offset >= 5 && body.length - offset - 5 >= body.readUInt32BE(offset + 1)) {
    const length = body.readUInt32BE(offset + 1);
    messages.push(body.subarray(offset + 5, offset + 5 + length));
    offset += 5 + length;
  }
  return { messages, rest: body.subarray(offset) };
}

/** A ModelInferRequest as protobuf bytes. */
export function serializeModelInferRequest(request: ModelInferRequest): Buffer {
  return modelInfer.requestSerialize(request);
}

export interface FrameOptions {
  /** The compressed flag (byte 0); default false. */
  readonly compressed?: boolean;
  /** The length the prefix announces; default the message's own. */
  readonly declaredLength?: number;
}

/** gRPC's length-prefixed message: a compressed flag, a 4-byte big-endian length, the message. */
export function grpcFrame(message: Buffer, options: FrameOptions = {}): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt8(options.compressed ? 1 : 0, 0);
  frame.writeUInt32BE(options.declaredLength ?? message.length, 1);
  message.copy(frame, 5);
  return frame;
}

export interface RawGrpcAnswer {
  /** grpc-status (a `grpc.status` code); -1 when the server sent none. */
  readonly code: number;
  /** grpc-message, decoded. */
  readonly details: string;
  /** The bytes of the answer's messages, frames included. */
  readonly body: Buffer;
}

/** Sends `body` as the request stream of one call to `path`, then half-closes, and reads the answer. */
export async function rawGrpcCall(address: string, path: string, body: Buffer, metadata: Readonly<Record<string, string>> = {}): Promise<RawGrpcAnswer> {
  const session = connect(`http://${address}`);
  session.on('error', () => undefined); // the stream's own error says it
  try {
    const stream = session.request({
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: path,
      [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
      [constants.HTTP2_HEADER_TE]: 'trailers',
      ...metadata,
    });
    let status: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (headers) => {
      if (headers['grpc-status'] !== undefined) status = headers;
    });
    stream.on('trailers', (trailers) => {
      status = trailers;
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', () => undefined);
    const closed = once(stream, 'close');
    stream.end(body);
    await closed;
    const code = status['grpc-status'];
    return { code: code === undefined ? -1 : Number(code), details: decodeURIComponent(String(status['grpc-message'] ?? '')), body: Buffer.concat(chunks) };
  } finally {
    session.close();
  }
}

/** A ModelStreamInfer stream on bare HTTP/2 whose client reads nothing until told to. */
export interface UnreadStream {
  /** Every request written and the stream half-closed (pending while the server does not take them). */
  readonly written: Promise<void>;
  /** Starts reading; settles when the server ends the stream: its status and every answer. */
  readAll(): Promise<{ code: string | undefined; answers: ModelStreamInferResponse[]; rest: number }>;
  close(): void;
}

/**
 * Writes `requests` on a ModelStreamInfer stream as fast as the server takes them and does not
 * read its socket: a client that never reads its answers (a grpc-js client would read on into its
 * own memory). Writes wait for 'drain': past Node's session memory, Node itself would reset the stream.
 */
export function openUnreadStream(address: string, requests: readonly ModelInferRequest[]): UnreadStream {
  const session = connect(`http://${address}`);
  session.on('error', () => undefined);
  const stream = session.request({
    [constants.HTTP2_HEADER_METHOD]: 'POST',
    [constants.HTTP2_HEADER_PATH]: MODEL_STREAM_INFER_PATH,
    [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
    [constants.HTTP2_HEADER_TE]: 'trailers',
  });
  let code: string | undefined;
  stream.on('trailers', (trailers) => (code = String(trailers['grpc-status'])));
  stream.on('error', () => undefined);
  const closed = once(stream, 'close');
  const written = (async () => {
    for (const request of requests) {
      if (stream.destroyed) return;
      if (!stream.write(grpcFrame(serializeModelInferRequest(request)))) await Promise.race([once(stream, 'drain'), closed]);
    }
    stream.end();
  })();
  return {
    written,
    readAll: async () => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      await written;
      await closed;
      const { messages, rest } = splitGrpcFrames(Buffer.concat(chunks));
      return { code, answers: messages.map(deserializeModelStreamInferResponse), rest: rest.length };
    },
    close: () => {
      stream.destroy();
      session.destroy();
    },
  };
}
