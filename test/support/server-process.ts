import { testIngressThreads } from './test-server.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './free-port.js';

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

/**
 * The server as its own process (`node src/main.js`), for what an in-process server cannot show: a
 * start that fails, or a fault that ends the process. Listens on free ports of 127.0.0.1 with its
 * own STATE_DIR; `env` adds to or overrides that.
 */
export interface ServerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly grpcAddress: string;
  /** Settles with the exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>;
  stderr(): string;
  /** What it wrote to stdout (its JSON log lines, when LOG_LEVEL lets some through). */
  stdout(): string;
  /** Waits until GET /v2/health/live answers 200 (at most ~30 s); false if the process exited first or never did. */
  untilLive(): Promise<boolean>;
  /** The same for GET /v2/health/ready: its models are loaded. */
  untilReady(): Promise<boolean>;
  /** Ends the process if it still runs (SIGKILL) and removes its STATE_DIR. */
  stop(): Promise<void>;
}

export async function spawnServer(env: Record<string, string>): Promise<ServerProcess> {
  const [httpPort, grpcPort] = [await freePort(), await freePort()];
  const stateDir = await mkdtemp(join(tmpdir(), 'onnx-serving-state-'));
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH, STATE_DIR: stateDir, HOST: '127.0.0.1', HTTP_PORT: String(httpPort), GRPC_PORT: String(grpcPort), METRICS_PORT: '0', LOG_LEVEL: 'silent', INGRESS_THREADS: testIngressThreads(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  let exitCode: number | null | undefined;
  const exited = (once(child, 'exit') as Promise<[number | null]>).then(([code]) => (exitCode = code));
  const url = `http://127.0.0.1:${httpPort}`;
  const until = async (path: string) => {
    for (let attempt = 0; attempt < 600 && exitCode === undefined; attempt++) {
      if (await fetch(`${url}${path}`).then((r) => r.ok, () => false)) return true;
      await sleep(50);
    }
    return false;
  };
  return {
    child,
    url,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    exited,
    stderr: () => stderr,
    stdout: () => stdout,
    untilLive: () => until('/v2/health/live'),
    untilReady: () => until('/v2/health/ready'),
    async stop() {
      if (exitCode === undefined) {
        child.kill('SIGKILL');
        await exited;
      }
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}
