import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';

/**
 * A redis-server of the test's own (installed by scripts/ensure-redis-server.sh, which `npm test`
 * runs first), on a free port of 127.0.0.1, keeping its data in memory only.
 */
export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>`, what REDIS_URL takes. */
  readonly url: string;
  /** Ends the server (SIGKILL: what a crash looks like to clients). Data is lost. */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty, after {@link kill}. */
  restart(): Promise<void>;
  /** Ends it if it runs and removes its directory. */
  stop(): Promise<void>;
}

export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'onnx-serving-redis-'));
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--loglevel', 'warning', '--logfile', ''], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let output = '';
    proc.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    proc.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitForPing(port, proc, () => output);
  };

  const kill = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGKILL');
    await exited;
  };

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: launch,
    async stop() {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until the server answers PING (RESP over a plain socket), failing if the process exits first. */
async function waitForPing(port: number, proc: ChildProcess, output: () => string): Promise<void> {
  const { connect } = await import('node:net');
  const exited = once(proc, 'exit').then(() => {
    throw new Error(`redis-server exited before it answered: ${output().trim()}`);
  });
  exited.catch(() => undefined);
  for (let attempt = 0; attempt < 200; attempt++) {
    const answered = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => socket.write('PING\r\n'));
      socket.once('data', (data) => {
        socket.destroy();
        resolve(data.toString().startsWith('+PONG'));
      });
      socket.once('error', () => resolve(false));
    });
    if (answered) return;
    await Promise.race([new Promise((resolve) => setTimeout(resolve, 25)), exited]);
  }
  throw new Error(`redis-server on port ${port} did not answer PING: ${output().trim()}`);
}
