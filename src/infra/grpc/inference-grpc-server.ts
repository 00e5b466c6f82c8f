import { Server, ServerCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { ServerGrpc, type GrpcOptions } from '@nestjs/microservices';

/**
 * Nest's gRPC transport, keeping the port it bound: with GRPC_PORT=0 the system chooses one, and
 * Nest's own `createClient()` drops the port `bindAsync` answers, so the server could not say where
 * it listens. This makes the grpc-js server the way Nest does (the same channel options, from the
 * same `GrpcOptions`) and keeps the port; everything else is Nest's.
 */
export class InferenceGrpcServer extends ServerGrpc {
  private boundPort?: number;

  constructor(private readonly grpcOptions: GrpcOptions['options']) {
    super(grpcOptions);
  }

  /** The port bound (GRPC_PORT, or the one chosen when it is 0); undefined until the server listens. */
  get port(): number | undefined {
    return this.boundPort;
  }

  override async createClient(): Promise<Server> {
    const { channelOptions, maxSendMessageLength, maxReceiveMessageLength, maxMetadataSize, credentials } = this.grpcOptions;
    const options: ChannelOptions = {
      ...channelOptions,
      ...(maxSendMessageLength && { 'grpc.max_send_message_length': maxSendMessageLength }),
      ...(maxReceiveMessageLength && { 'grpc.max_receive_message_length': maxReceiveMessageLength }),
      ...(maxMetadataSize && { 'grpc.max_metadata_size': maxMetadataSize }),
      ...this.getKeepaliveOptions(),
    };
    const server = new Server(options);
    this.boundPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync(this.url, (credentials as ServerCredentials | undefined) ?? ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(error) : resolve(port),
      ),
    );
    return server;
  }
}
