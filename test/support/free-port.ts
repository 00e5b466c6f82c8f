import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * The lowest port the kernel hands out as the local port of outgoing connections
 * (net.ipv4.ip_local_port_range). A port probed free in that range can be taken by any outgoing
 * connection (another test's client, Redis) before the server process that was given it binds
 * it: a port is chosen below it.
 */
function ephemeralPortsFrom(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

const LOWEST = 10_000;

/** Ports this process has handed out: never twice (a server given the same port for HTTP and gRPC could not start). */
const handedOut = new Set<number>();

async function bindable(port: number): Promise<boolean> {
  const probe = createServer();
  probe.listen(port, '127.0.0.1');
  const outcome = await Promise.race([once(probe, 'listening').then(() => true), once(probe, 'error').then(() => false)]);
  if (outcome) {
    probe.close();
    await once(probe, 'close');
  }
  return outcome;
}

/**
 * A TCP port free on 127.0.0.1 now, for a server process the test starts: drawn at random below
 * the kernel's ephemeral ports (so no outgoing connection takes it meanwhile), checked by
 * binding it, and never handed out twice by this process.
 */
export async function freePort(): Promise<number> {
  const highest = ephemeralPortsFrom() - 1;
  if (highest > LOWEST) {
    for (let attempt = 0; attempt < 100; attempt++) {
      const port = LOWEST + Math.floor(Math.random() * (highest - LOWEST));
      if (handedOut.has(port) || !(await bindable(port))) continue;
      handedOut.add(port);
      return port;
    }
  }
  // No room below the ephemeral ports (or none free): one the kernel picks.
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as { port: number };
  probe.close();
  await once(probe, 'close');
  return port;
}
