/**
 * The child processes of one bench run: each is tracked from spawn, so every one of them is ended
 * at the end of the run, on error, on SIGINT/SIGTERM and (with SIGKILL) when the bench exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const TAIL_BYTES = 8 * 1024;

export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  /** Settles with the exit code (or signal name) when the child has exited. */
  readonly exited: Promise<number | string>;
  /** All of stdout (children of the bench print little there), and the last bytes of stderr. */
  stdout(): string;
  stderrTail(): string;
}

export class Children {
  private readonly running = new Set<Child>();

  /**
   * Runs `node <script> ...args` with the bench's environment plus `env`. With `stdoutFile`, the
   * child writes its stdout straight to that file (a server's access log: the bench process, which
   * also generates the load, does not read it), and `stdout()` is empty.
   */
  start(name: string, script: string, args: readonly string[] = [], env: Record<string, string> = {}, { stdoutFile }: { stdoutFile?: string } = {}): Child {
    const stdoutFd = stdoutFile === undefined ? undefined : openSync(stdoutFile, 'a');
    let proc: ChildProcess;
    try {
      proc = spawn(process.execPath, [script, ...args], {
        env: { ...process.env, ...env },
        stdio: ['ignore', stdoutFd ?? 'pipe', 'pipe'],
      });
    } finally {
      if (stdoutFd !== undefined) closeSync(stdoutFd); // the child holds its own copy
    }
    let out = '';
    let err = '';
    proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err = (err + chunk).slice(-TAIL_BYTES)));
    const exited = new Promise<number | string>((resolve) => {
      proc.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
      proc.once('error', (error) => resolve(`spawn error: ${error.message}`));
    });
    const child: Child = { name, process: proc, exited, stdout: () => out, stderrTail: () => err };
    this.running.add(child);
    void exited.then(() => this.running.delete(child));
    return child;
  }

  /** SIGTERM, then SIGKILL if the child has not exited within `graceMs`. */
  async stop(child: Child, graceMs = 3000): Promise<void> {
    if (!this.running.has(child)) return;
    child.process.kill('SIGTERM');
    const exitedInTime = await Promise.race([child.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!exitedInTime) {
      child.process.kill('SIGKILL');
      await Promise.race([child.exited, sleep(1000)]);
    }
    this.running.delete(child);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.running].map((child) => this.stop(child)));
  }

  /** Synchronous last resort (for process 'exit'): SIGKILL whatever is still running. */
  killAllNow(): void {
    for (const child of this.running) {
      if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
    }
    this.running.clear();
  }
}

/** A port free on 127.0.0.1 right now (the OS picks it; the child binds it a moment later). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (typeof address !== 'object' || address === null) throw new Error('could not get a free port');
  return address.port;
}

/** Polls `url` until it answers 200; fails early if the child exits, or after `timeoutMs`. */
export async function waitForReady(url: string, child: Child, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited: number | string | undefined;
  void child.exited.then((code) => (exited = code));
  while (Date.now() < deadline) {
    if (exited !== undefined) {
      throw new Error(`${child.name} exited (${exited}) before it was ready:\n${child.stderrTail()}`);
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await response.arrayBuffer();
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${child.name} was not ready at ${url} within ${timeoutMs} ms:\n${child.stderrTail()}`);
}
