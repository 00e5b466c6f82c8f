import { GrpcMethod } from '@nestjs/microservices';
import { INFERENCE_SERVICE } from '../../infra/grpc/grpc-options.js';
import { ServerReadiness } from './server-readiness.js';
import { SERVER_EXTENSIONS, SERVER_NAME, SERVER_VERSION } from './server-identity.js';
import { GrpcController } from '../observability/tracing/grpc-controller.decorator.js';

/** KServe V2 `ServerLive`, `ServerReady` and `ServerMetadata`, answered as their HTTP twins are. */
@GrpcController()
export class HealthGrpcController {
  constructor(private readonly readiness: ServerReadiness) {}

  @GrpcMethod(INFERENCE_SERVICE, 'ServerLive')
  serverLive() {
    return { live: true };
  }

  @GrpcMethod(INFERENCE_SERVICE, 'ServerReady')
  serverReady() {
    return { ready: this.readiness.notReadyReason() === undefined };
  }

  @GrpcMethod(INFERENCE_SERVICE, 'ServerMetadata')
  serverMetadata() {
    return { name: SERVER_NAME, version: SERVER_VERSION, extensions: SERVER_EXTENSIONS };
  }
}
