import { Server, ServerCredentials, type ChannelOptions, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { ServerGrpc, type GrpcOptions } from '@nestjs/microservices';
import { isObservable } from 'rxjs';

type MessageHandler = Parameters<ServerGrpc['createUnaryServiceMethod']>[0];

/**
 * Nest's gRPC transport, keeping the port it bound: with GRPC_PORT=0 the system chooses one, and
 * Nest's own `createClient()` drops the port `bindAsync` answers, so the server could not say where
 * it listens. This makes the grpc-js server the way Nest does (the same channel options, from the
 * same `GrpcOptions`) and keeps the port; everything else is Nest's.
 */
export class InferenceGrpcServer extends ServerGrpc {
  private boundPort?: number;
  /** Whether a processing hook was set (Nest's instrumentation seam): then every unary call takes Nest's own path, which runs them. */
  private hooked = false;

  constructor(private readonly grpcOptions: GrpcOptions['options']) {
    super(grpcOptions);
  }

  /** The port bound (GRPC_PORT, or the one chosen when it is 0); undefined until the server listens. */
  get port(): number | undefined {
    return this.boundPort;
  }

  override setOnProcessingStartHook(...args: Parameters<ServerGrpc['setOnProcessingStartHook']>): void {
    this.hooked = true;
    super.setOnProcessingStartHook(...args);
  }

  override setOnProcessingEndHook(...args: Parameters<ServerGrpc['setOnProcessingEndHook']>): void {
    this.hooked = true;
    super.setOnProcessingEndHook(...args);
  }

  /**
   * A unary call (ModelInfer among them) goes straight to Nest's handler (the same guards,
   * interceptors and exception filters: they are inside `methodHandler`), and its answer straight
   * to grpc-js's callback. Nest's own wrapper copies the call object into a new one per call
   * (`{ ...call }`, for processing hooks nothing here sets) and pipes the answer through an rxjs
   * pipeline with `finalize`; this does what it does with one await. An answer that is an
   * Observable (what interceptors and filters return) is subscribed as Nest does: each value
   * answers, an error fails the call.
   */
  override createUnaryServiceMethod(methodHandler: MessageHandler): Function {
    const nest = super.createUnaryServiceMethod(methodHandler) as (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => Promise<void>;
    return (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      if (this.hooked) return nest(call, callback);
      return answer(methodHandler(call.request, call.metadata, call), callback);
    };
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

async function answer(result: unknown, callback: sendUnaryData<unknown>): Promise<void> {
  let value: unknown;
  try {
    value = await result;
  } catch (error) {
    callback(error as Error);
    return;
  }
  if (!isObservable(value)) {
    callback(null, value);
    return;
  }
  value.subscribe({
    next: async (data: unknown) => {
      try {
        callback(null, await data);
      } catch (error) {
        callback(error as Error);
      }
    },
    error: (error: unknown) => callback(error as Error),
  });
}
