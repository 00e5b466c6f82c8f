import { fileURLToPath } from 'node:url';
import type { ChannelOptions, ServerCredentials } from '@grpc/grpc-js';
import { loadSync, type Options as ProtoLoaderOptions, type PackageDefinition } from '@grpc/proto-loader';
import { Transport, type GrpcOptions } from '@nestjs/microservices';
import type { AppConfig } from '../config/app-config.js';
import type { Server as GrpcServer } from '@grpc/grpc-js';
import type { GrpcConnectionCap } from './grpc-connection-cap.js';
import { deferTensorContents } from './deferred-tensor-contents.js';
import { acceptMalformedRequests } from './malformed-request.js';

/** The directory of the .proto files (copied next to the compiled code by the build scripts). */
const PROTO_DIR = fileURLToPath(new URL('./proto/', import.meta.url));
export const INFERENCE_PROTO_FILE = 'grpc_service.proto';
export const INFERENCE_PACKAGE = 'inference';
export const INFERENCE_SERVICE = 'GRPCInferenceService';
/** This server's own service for async inference jobs (KServe's protocol has none), in a package of its own. */
export const JOBS_PROTO_FILE = 'inference_jobs.proto';
export const JOBS_PACKAGE = 'onnx_serving';
export const JOBS_SERVICE = 'InferenceJobService';

/**
 * How messages become JavaScript objects, on the server and in our clients alike: proto field names
 * as they are; 64-bit integers as decimal strings (INT64/UINT64 tensor elements stay exact); enums
 * by name; absent repeated fields as empty arrays and absent maps as empty objects; a oneof's set field named by its group
 * (`parameter_choice`); bytes as Buffers.
 */
export const PROTO_LOADER_OPTIONS: ProtoLoaderOptions = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  arrays: true,
  objects: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

/**
 * The gRPC server of the hybrid app. Limits: a received message may be MAX_REQUEST_BYTES (the
 * usual 4 MiB default is too small for real tensors; beyond the limit grpc-js answers
 * RESOURCE_EXHAUSTED naming both sizes); a sent one is not limited here, as in Triton: the client's
 * own receive limit applies. Keepalive: the server pings each connection every
 * GRPC_KEEPALIVE_TIME_MS and drops one that stays silent for GRPC_KEEPALIVE_TIMEOUT_MS, so dead
 * peers of long-lived connections are noticed; a connection without a call for
 * GRPC_MAX_CONNECTION_IDLE_MS is closed (GOAWAY), and at most GRPC_MAX_CONNECTIONS are open (see
 * GrpcConnectionCap); it accepts clients' own pings at any rate. On shutdown, calls in progress are finished first.
 * An inference request that is not a valid protobuf message is refused with INVALID_ARGUMENT (not
 * grpc-js's INTERNAL): see acceptMalformedRequests. Inference requests are decoded without their
 * typed tensor contents, which wait until the request has been judged: see deferTensorContents.
 * `credentials`: TLS (ServerTls); plaintext without.
 */
export function grpcServerOptions(config: AppConfig, connections?: GrpcConnectionCap, credentials?: ServerCredentials): GrpcOptions {
  const host = config.HOST.includes(':') ? `[${config.HOST}]` : config.HOST;
  return {
    transport: Transport.GRPC,
    options: {
      url: `${host}:${config.GRPC_PORT}`,
      ...(credentials && { credentials }),
      package: [INFERENCE_PACKAGE, JOBS_PACKAGE],
      protoPath: [INFERENCE_PROTO_FILE, JOBS_PROTO_FILE],
      loader: PROTO_LOADER_OPTIONS,
      maxReceiveMessageLength: config.MAX_REQUEST_BYTES,
      maxSendMessageLength: -1,
      keepalive: { keepaliveTimeMs: config.GRPC_KEEPALIVE_TIME_MS, keepaliveTimeoutMs: config.GRPC_KEEPALIVE_TIMEOUT_MS },
      channelOptions: { 'grpc.max_connection_idle_ms': config.GRPC_MAX_CONNECTION_IDLE_MS },
      gracefulShutdown: true,
      onLoadPackageDefinition: (definition, server) => {
        connections?.attach(server as GrpcServer);
        prepareServingDefinition(definition);
      },
    },
  };
}

/**
 * How the served methods read their messages (the main thread's server and each ingress thread's):
 * inference requests decoded without their typed tensor contents until judged, and a message
 * protobuf cannot decode refused with INVALID_ARGUMENT.
 */
function prepareServingDefinition(definition: PackageDefinition): void {
  const service = `${INFERENCE_PACKAGE}.${INFERENCE_SERVICE}`;
  deferTensorContents(definition, service, ['ModelInfer', 'ModelStreamInfer'], PROTO_DIR, INFERENCE_PROTO_FILE);
  acceptMalformedRequests(definition, service, ['ModelInfer', 'ModelStreamInfer']);
  // A job is submitted as a ModelInferRequest: judged before its elements are decoded, alike.
  const jobs = `${JOBS_PACKAGE}.${JOBS_SERVICE}`;
  deferTensorContents(definition, jobs, ['SubmitJob'], PROTO_DIR, INFERENCE_PROTO_FILE);
  acceptMalformedRequests(definition, jobs, ['SubmitJob']);
}

/** The served package definition, loaded as Nest loads it (an ingress thread's server). */
export function loadServingDefinition(): PackageDefinition {
  const definition = loadSync([INFERENCE_PROTO_FILE, JOBS_PROTO_FILE], PROTO_LOADER_OPTIONS);
  prepareServingDefinition(definition);
  return definition;
}

/** The grpc-js server options of the serving port, as Nest makes them from {@link grpcServerOptions} (the same keepalive and limits). */
export function grpcChannelOptions(config: AppConfig): ChannelOptions {
  return {
    'grpc.max_connection_idle_ms': config.GRPC_MAX_CONNECTION_IDLE_MS,
    'grpc.max_receive_message_length': config.MAX_REQUEST_BYTES,
    'grpc.max_send_message_length': -1,
    'grpc.keepalive_time_ms': config.GRPC_KEEPALIVE_TIME_MS,
    'grpc.keepalive_timeout_ms': config.GRPC_KEEPALIVE_TIMEOUT_MS,
  };
}
