import type { Server as NetServer } from 'node:net';
import type { Server as GrpcServer } from '@grpc/grpc-js';

/**
 * GRPC_MAX_CONNECTIONS: grpc-js has no option for it, so the cap is Node's own `maxConnections`
 * set on the HTTP/2 servers grpc-js listens with (past it Node closes a new connection as soon as
 * it is accepted). grpc-js keeps them in a private map: if a version of grpc-js stops doing so,
 * `apply` fails at start, loudly, rather than leaving the port without a cap (the e2e test of the
 * cap fails too).
 */
export class GrpcConnectionCap {
  private server?: GrpcServer;

  constructor(readonly maxConnections: number) {}

  /** The grpc-js server, as Nest creates it (before it binds). */
  attach(server: GrpcServer): void {
    this.server = server;
  }

  /** Once the server listens: caps each of its listening servers. */
  apply(): void {
    const listening = (this.server as unknown as { http2Servers?: Map<NetServer, unknown> } | undefined)?.http2Servers;
    if (!listening || listening.size === 0) throw new Error('the gRPC server exposes no listening HTTP/2 server: GRPC_MAX_CONNECTIONS cannot be applied');
    for (const server of listening.keys()) server.maxConnections = this.maxConnections;
  }
}
