import type { Server as NetServer, Socket } from 'node:net';

/** A count of open connections that several threads' servers share (a slot of a SharedArrayBuffer). */
export interface SharedConnectionCount {
  readonly counts: Int32Array;
  readonly slot: number;
}

/**
 * Caps the connections of several servers together, one per ingress thread on the same port:
 * Node's `maxConnections` counts one server's only, and the kernel's spread of connections over
 * the threads is even on average, not per connection. A connection past the cap is closed as soon
 * as it is accepted (as `maxConnections` does), before any listener of the server sees it.
 */
export function capConnectionsAcrossThreads(server: NetServer, count: SharedConnectionCount, max: number): void {
  server.prependListener('connection', (socket: Socket) => {
    if (Atomics.add(count.counts, count.slot, 1) >= max) {
      Atomics.sub(count.counts, count.slot, 1);
      socket.destroy();
      return;
    }
    socket.once('close', () => Atomics.sub(count.counts, count.slot, 1));
  });
}
