// The crash test: a child process saves model states in a tight loop and is killed with SIGKILL at
// random moments; after each kill the store must load, and every model's state must be one the
// child wrote whole (states are derived from their revision, see writtenState), never a partial one.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { FileModelStateStore } from '../../../src/infra/persistence/file-model-state-store.js';
import { writtenState } from '../../support/state-writer.js';

const WRITER = fileURLToPath(new URL('../../support/state-writer.js', import.meta.url));
const KILLS = 20;
const NAMES = ['resnet', 'model with spaces', 'modèle ✓', '..'];

/** mulberry32: random delays that a failing run can replay (the seed is in every assertion message). */
function randomFrom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface Writer {
  readonly child: ChildProcess;
  /** Complete lines printed so far. */
  readonly lines: string[];
  readonly stderr: () => string;
  /** Resolves once a first save has resolved in the child; rejects if it exits before. */
  readonly firstSave: Promise<void>;
  readonly closed: Promise<[number | null, NodeJS.Signals | null]>;
}

function startWriter(directory: string): Writer {
  const child = spawn(process.execPath, [WRITER, directory, ...NAMES], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let partial = '';
  let stderr = '';
  const closed = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  const firstSave = new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop()!;
      lines.push(...parts);
      if (lines.some((line) => line.startsWith('saved '))) resolve();
    });
    void closed.then(([code, signal]) => reject(new Error(`the writer ended (${code ?? signal}) before a first save: ${stderr}`)));
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return { child, lines, stderr: () => stderr, firstSave, closed };
}

/** Per model name, the highest revision whose save had resolved in the child (it printed it). */
function confirmedRevisions(lines: readonly string[]): Map<string, number> {
  const confirmed = new Map<string, number>();
  for (const line of lines) {
    const match = /^saved (\d+) (\d+)$/.exec(line);
    if (!match) continue;
    const name = NAMES[Number(match[1])]!;
    confirmed.set(name, Math.max(confirmed.get(name) ?? 0, Number(match[2])));
  }
  return confirmed;
}

describe('FileModelStateStore killed during writes', { timeout: 180_000 }, () => {
  let directory: string;
  let current: ChildProcess | undefined;

  before(async () => {
    directory = join(await mkdtemp(join(tmpdir(), 'model-state-kill-')), 'state');
  });
  after(async () => {
    if (current && current.exitCode === null && current.signalCode === null) {
      current.kill('SIGKILL');
      await once(current, 'close');
    }
    await rm(join(directory, '..'), { recursive: true, force: true });
  });

  it(`loads, after each of ${KILLS} SIGKILLs at random moments, only states the writer wrote whole`, async () => {
    const seed = Number(process.env.KILL_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const random = randomFrom(seed);
    /** Per model, the revision loaded after the previous kill. */
    const known = new Map<string, number>(NAMES.map((name) => [name, 0]));

    for (let kill = 1; kill <= KILLS; kill++) {
      const context = `kill ${kill}, KILL_TEST_SEED=${seed}`;
      const writer = startWriter(directory);
      current = writer.child;
      await writer.firstSave;
      await sleep(5 + Math.floor(random() * 96));
      writer.child.kill('SIGKILL');
      const [code, signal] = await writer.closed;
      assert.equal(signal, 'SIGKILL', `${context}: the writer ended by itself (code ${code}): ${writer.stderr()}`);

      const loaded = (await new FileModelStateStore(directory).loadAll()).states;
      const confirmed = confirmedRevisions(writer.lines);
      assert.ok(confirmed.size > 0, `${context}: the writer saved something`);
      for (const stored of loaded) {
        const name = stored.state.name;
        assert.ok(NAMES.includes(name), `${context}: unexpected model '${name}'`);
        assert.deepEqual(stored.state, writtenState(name, stored.revision), `${context}: '${name}' at revision ${stored.revision} is not the state written as that revision`);
        const atLeast = Math.max(known.get(name)!, confirmed.get(name) ?? 0);
        assert.ok(stored.revision >= atLeast, `${context}: '${name}' went back to revision ${stored.revision} after ${atLeast} was saved`);
        // The writer saves one state at a time, so at most one save was in flight when it was killed.
        assert.ok(stored.revision <= atLeast + 1, `${context}: '${name}' is at revision ${stored.revision}, more than one past ${atLeast}`);
        known.set(name, stored.revision);
      }
      for (const name of confirmed.keys()) {
        assert.ok(loaded.some((stored) => stored.state.name === name), `${context}: the saved state of '${name}' is lost`);
      }
      const leftovers = (await readdir(directory)).filter((file) => file.endsWith('.tmp'));
      assert.deepEqual(leftovers, [], `${context}: the killed writer's temporary file is removed by loadAll`);
    }
    current = undefined;
  });
});
