/**
 * Baseline child process: a bare @grpc/grpc-js server (no Nest, no model) serving the server's
 * inference.GRPCInferenceService, loaded from the same .proto files with the same proto-loader
 * options. grpc-js deserializes every request into an object as for any service; the ModelInfer
 * handler answers a fixed ModelInferResponse object — the server's own answer to the same request,
 * passed in by the bench — which grpc-js serializes per call as it does the server's answers. So
 * the ratio against it is the cost of everything the server adds above HTTP/2 + gRPC + protobuf.
 * ServerReady answers ready (the bench waits on it); every other method is UNIMPLEMENTED.
 *
 * Env: PORT, HOST (default 127.0.0.1), RESPONSE_JSON (the answer; Buffers as {type: 'Buffer', data}).
 */
import * as grpc from '@grpc/grpc-js';
import { InferenceService, answerFromJson } from './grpc.js';

const port = Number(process.env.PORT);
const host = process.env.HOST ?? '127.0.0.1';
const responseJson = process.env.RESPONSE_JSON;
if (!Number.isInteger(port) || port <= 0 || !responseJson) {
  process.stderr.write('bare-grpc-server: PORT and RESPONSE_JSON are required\n');
  process.exit(2);
}
// An object, so grpc-js serializes it per call as it does the server's answers.
const answer = answerFromJson(responseJson);

const server = new grpc.Server();
server.addService(InferenceService.service, {
  ServerReady: (_call: grpc.ServerUnaryCall<object, object>, callback: grpc.sendUnaryData<object>) => callback(null, { ready: true }),
  ModelInfer: (call: grpc.ServerUnaryCall<{ inputs?: unknown[] }, object>, callback: grpc.sendUnaryData<object>) => {
    // The request was deserialized by grpc-js; a minimal check keeps it from being dead work.
    if (!Array.isArray(call.request.inputs) || call.request.inputs.length === 0) {
      callback({ code: grpc.status.INVALID_ARGUMENT, details: 'inputs must not be empty' });
      return;
    }
    callback(null, answer);
  },
});

const shutdown = (): void => {
  server.tryShutdown(() => process.exit(0));
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

await new Promise<void>((resolve, reject) => {
  server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (error) => (error ? reject(error) : resolve()));
});
