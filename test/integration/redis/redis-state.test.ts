// The Redis adapters against a real redis-server: compare-and-set stores with change notification,
// catching up after an outage, locks with expiry, the judge's lease, rollout figures, and the
// error that names Redis while it is down.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import type { ModelState, ModelStateChange } from '../../../src/domain/registry/model-state-store.port.js';
import { Rollout } from '../../../src/domain/rollout/rollout.js';
import { RedisConnection } from '../../../src/infra/redis/redis-connection.js';
import { RedisLeadership } from '../../../src/infra/redis/redis-leadership.js';
import { RedisOperationLocks } from '../../../src/infra/redis/redis-operation-locks.js';
import { RedisRolloutFigures } from '../../../src/infra/redis/redis-rollout-figures.js';
import { RedisModelStateStore, RedisRolloutRepository } from '../../../src/infra/redis/redis-state-stores.js';
import { startRedisServer, type RedisServer } from '../../support/redis-server.js';

const aState = (name: string, overrides: Partial<ModelState> = {}): ModelState => ({ name, loadedVersions: [2], unloadedVersions: [1], ...overrides });

/** Resolves with the first `count` changes `watch` reports for which `accept` holds. */
function changes(store: RedisModelStateStore, count: number, accept: (change: ModelStateChange) => boolean = () => true): { seen: Promise<ModelStateChange[]>; stop: () => void } {
  const got: ModelStateChange[] = [];
  let stop!: () => void;
  const seen = new Promise<ModelStateChange[]>((resolve) => {
    stop = store.watch((change) => {
      if (!accept(change)) return;
      got.push(change);
      if (got.length === count) resolve(got);
    });
  });
  return { seen, stop };
}

/** Waits until `check` holds, polling with a bound (not a fixed sleep). */
async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await delay(25);
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('Redis adapters', { timeout: 60_000 }, () => {
  let redis: RedisServer;
  const connections: RedisConnection[] = [];
  let prefixes = 0;
  /** A connection of a server of its own, under a prefix of the test's own (tests do not see each other's keys). */
  const server = (prefix: string) => {
    const connection = new RedisConnection(redis.url, prefix);
    connections.push(connection);
    return connection;
  };
  const newPrefix = () => `test-${++prefixes}:`;

  before(async () => {
    redis = await startRedisServer();
  });
  after(async () => {
    await Promise.all(connections.map((c) => c.close()));
    await redis?.stop();
  });

  describe('RedisModelStateStore', () => {
    it('saves compare-and-set: the first write is revision 1, a stale revision is a conflict, and a new store reads it back', async () => {
      const prefix = newPrefix();
      const store = new RedisModelStateStore(server(prefix));
      const full = aState('resnet', { defaultVersion: 2, configOverride: '{"max_batch_size":4}', explicitVersions: [2] });
      assert.deepEqual(await store.save(full, 0), { revision: 1, state: full });
      await assert.rejects(store.save(aState('resnet'), 0), { code: 'REGISTRY.STATE_CONFLICT', message: /the state of model 'resnet' is at revision 1, not 0/ });
      assert.deepEqual(await store.save(aState('resnet'), 1), { revision: 2, state: aState('resnet') });
      const other = new RedisModelStateStore(server(prefix));
      assert.deepEqual((await other.loadAll()).states, [{ revision: 2, state: aState('resnet') }]);
      assert.deepEqual(await other.load('resnet'), { revision: 2, state: aState('resnet') });
      assert.equal(await other.load('absent'), undefined);
    });

    it('of two servers writing the same revision, exactly one wins', async () => {
      const prefix = newPrefix();
      const [a, b] = [new RedisModelStateStore(server(prefix)), new RedisModelStateStore(server(prefix))];
      const results = await Promise.allSettled([a.save(aState('m', { loadedVersions: [1] }), 0), b.save(aState('m', { loadedVersions: [2] }), 0)]);
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      assert.equal(results.filter((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'REGISTRY.STATE_CONFLICT').length, 1);
    });

    it('removes at the current revision only', async () => {
      const store = new RedisModelStateStore(server(newPrefix()));
      await store.save(aState('gone'), 0);
      await assert.rejects(store.remove('gone', 0), { code: 'REGISTRY.STATE_CONFLICT' });
      await store.remove('gone', 1);
      assert.equal(await store.load('gone'), undefined);
      await store.remove('gone', 0); // nothing stored, nothing to remove
    });

    it("tells every server of each change, the writer's own included, with the state and its revision", async () => {
      const prefix = newPrefix();
      const writer = new RedisModelStateStore(server(prefix));
      const reader = new RedisModelStateStore(server(prefix));
      const own = changes(writer, 2, (c) => c.name === 'watched');
      const theirs = changes(reader, 2, (c) => c.name === 'watched');
      await until(async () => (await server(prefix).run('pubsub', (r) => r.pubsub('NUMSUB', `${prefix}model-states:changes`)))[1] === 2, 'both subscriptions');
      await writer.save(aState('watched', { defaultVersion: 2 }), 0);
      await writer.remove('watched', 1);
      const expected = [{ name: 'watched', stored: { revision: 1, state: aState('watched', { defaultVersion: 2 }) } }, { name: 'watched' }];
      assert.deepEqual(await theirs.seen, expected);
      assert.deepEqual(await own.seen, expected);
      own.stop();
      theirs.stop();
    });

    it('tells a change once, though the catch-up after a reconnect reads it again', async () => {
      const prefix = newPrefix();
      const connection = server(prefix);
      const store = new RedisModelStateStore(connection);
      const told: ModelStateChange[] = [];
      const stop = store.watch((change) => {
        if (change.name === 'once') told.push(change);
      });
      await until(async () => (await server(prefix).run('pubsub', (r) => r.pubsub('NUMSUB', `${prefix}model-states:changes`)))[1] === 1, 'the subscription');
      await store.save(aState('once'), 0);
      await until(() => told.length === 1, 'the change published');
      // The subscriber's connection drops and comes back: the store reads every record again.
      const caughtUp = new Promise<void>((resolve) => connection.subscriber.once('ready', () => resolve()));
      connection.subscriber.disconnect(true);
      await caughtUp;
      await store.save(aState('once', { defaultVersion: 2 }), 1);
      await until(() => told.some((change) => change.stored?.revision === 2), 'the next change');
      assert.deepEqual(told.map((change) => change.stored?.revision), [1, 2], 'revision 1 told once, then revision 2');
      stop();
    });

    it('sets aside a value written from outside, reports it, and lets the model be saved afresh', async () => {
      const prefix = newPrefix();
      const connection = server(prefix);
      await connection.run('hset', (r) => r.hset(`${prefix}model-states`, 'broken', '{not json'));
      const store = new RedisModelStateStore(connection);
      const { states, unreadable } = await store.loadAll();
      assert.deepEqual(states, []);
      assert.equal(unreadable.length, 1);
      assert.equal(unreadable[0]!.name, 'broken');
      assert.match(unreadable[0]!.reason, /not valid JSON/);
      assert.match(unreadable[0]!.keptAs, /^broken\.unreadable-\d+ in the Redis hash test-\d+:model-states:unreadable$/);
      assert.equal((await store.save(aState('broken'), 0)).revision, 1);
    });
  });

  describe('RedisRolloutRepository', () => {
    it('keeps rollouts apart from model states, compare-and-set, and tells other servers', async () => {
      const prefix = newPrefix();
      const snapshot = JSON.parse(JSON.stringify(Rollout.start('resnet', { stable: 1, canary: { version: 2, weight: 10 }, rules: [] }, () => true, new Date('2024-01-01T00:00:00Z')).snapshot()));
      const writer = new RedisRolloutRepository(server(prefix));
      const reader = new RedisRolloutRepository(server(prefix));
      let seen!: (change: unknown) => void;
      const changed = new Promise((resolve) => (seen = resolve));
      const stop = reader.watch(seen);
      await until(async () => (await server(prefix).run('pubsub', (r) => r.pubsub('NUMSUB', `${prefix}rollouts:changes`)))[1] === 1, 'the subscription');
      assert.deepEqual(await writer.save(snapshot, 0), { revision: 1, snapshot });
      assert.deepEqual(await changed, { modelName: 'resnet', stored: { revision: 1, snapshot } });
      await assert.rejects(writer.save(snapshot, 0), { code: 'REGISTRY.STATE_CONFLICT' });
      assert.deepEqual(await reader.loadAll(), [{ revision: 1, snapshot }]);
      assert.deepEqual((await new RedisModelStateStore(server(prefix)).loadAll()).states, []);
      stop();
    });
  });

  describe('RedisOperationLocks', () => {
    it('runs the operations of two servers on one key one at a time, and those on other keys side by side', async () => {
      const prefix = newPrefix();
      const [a, b] = [new RedisOperationLocks(server(prefix), { ttlMs: 5000, waitMs: 10_000 }), new RedisOperationLocks(server(prefix), { ttlMs: 5000, waitMs: 10_000 })];
      const log: string[] = [];
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let entered!: () => void;
      const inside = new Promise<void>((resolve) => (entered = resolve));
      const first = a.run('model/m', async () => {
        log.push('a in');
        entered();
        await held;
        log.push('a out');
      });
      await inside;
      const second = b.run('model/m', async () => log.push('b in'));
      await b.run('model/other', async () => log.push('b other'));
      release();
      await Promise.all([first, second]);
      assert.deepEqual(log, ['a in', 'b other', 'a out', 'b in']);
    });

    it("a dead holder's lock expires: another server takes it after the ttl", async () => {
      const prefix = newPrefix();
      const connection = server(prefix);
      // What a server SIGKILLed while holding the lock leaves: the key, with its expiry, and nobody renewing it.
      await connection.run('set', (r) => r.set(`${prefix}lock:model/m`, 'dead-token', 'PX', 300));
      const locks = new RedisOperationLocks(connection, { ttlMs: 5000, waitMs: 10_000 });
      assert.equal(await locks.run('model/m', async () => 'ran'), 'ran');
    });

    it('keeps its lock past the ttl while the operation runs (renewed), and releases only its own', async () => {
      const prefix = newPrefix();
      const connection = server(prefix);
      const locks = new RedisOperationLocks(connection, { ttlMs: 1000, waitMs: 300 });
      const other = new RedisOperationLocks(server(prefix), { ttlMs: 1000, waitMs: 300 });
      await locks.run('model/m', async () => {
        await delay(1500); // longer than the ttl: renewed meanwhile
        await assert.rejects(other.run('model/m', async () => 'ran'), { code: 'REGISTRY.STATE_CONFLICT', message: /another server has been changing model\/m/ });
      });
      assert.equal(await connection.run('exists', (r) => r.exists(`${prefix}lock:model/m`)), 0, 'released');
    });
  });

  describe('RedisLeadership and RedisRolloutFigures', () => {
    it('one server leads at a time; another takes the lease once the leader stops renewing it', async () => {
      const prefix = newPrefix();
      const [a, b] = [new RedisLeadership(server(prefix), 400), new RedisLeadership(server(prefix), 400)];
      assert.equal(await a.lead('judge'), true);
      assert.equal(await b.lead('judge'), false);
      assert.equal(await a.lead('judge'), true, 'renewed');
      await until(() => b.lead('judge'), 'the lease to lapse');
      assert.equal(await a.lead('judge'), false);
    });

    it("each server reads the others' samples of a rollout, not its own", async () => {
      const prefix = newPrefix();
      const sample = (requests: number) => ({ step: 'ACTIVE/0/t', versions: [{ version: 2, requests, errors: 0, latencies: [1, 2], divergenceSum: 0, divergenceCount: 0 }] });
      const [a, b, c] = ['a', 'b', 'c'].map((id) => new RedisRolloutFigures(server(prefix), id, 10_000));
      await a!.publish('m', sample(1));
      await b!.publish('m', sample(2));
      await c!.publish('m', sample(3));
      assert.deepEqual((await a!.fromOthers('m')).map((s) => s.versions[0]!.requests).sort(), [2, 3]);
    });
  });

  describe('while Redis is down', () => {
    it('a change fails at once with SERVER.STATE_STORE_UNAVAILABLE naming Redis; after the restart the store answers and watchers read every state again', async () => {
      const prefix = newPrefix();
      const store = new RedisModelStateStore(server(prefix));
      const watcher = new RedisModelStateStore(server(prefix));
      await store.save(aState('kept'), 0);
      const seenAgain = changes(watcher, 1, (c) => c.name === 'fresh');
      await redis.kill();
      await assert.rejects(store.save(aState('kept'), 1), { code: 'SERVER.STATE_STORE_UNAVAILABLE', message: /Redis \(REDIS_URL\).*is unreachable/ });
      const locks = new RedisOperationLocks(server(prefix), { ttlMs: 1000, waitMs: 1000 });
      await assert.rejects(locks.run('model/kept', async () => 'ran'), { code: 'SERVER.STATE_STORE_UNAVAILABLE' });
      await redis.restart();
      // The restarted server is empty; what another server writes meanwhile is read on reconnection
      // (or announced, once subscribed again), either way the watcher gets it.
      await until(async () => {
        try {
          await store.save(aState('fresh'), 0);
          return true;
        } catch (error) {
          return (error as { code?: string }).code === 'REGISTRY.STATE_CONFLICT';
        }
      }, 'the store to answer again');
      const bound = delay(10_000, undefined, { ref: false }).then(() => assert.fail('the watcher never got the state written after the restart'));
      assert.deepEqual((await Promise.race([seenAgain.seen, bound]))[0], { name: 'fresh', stored: { revision: 1, state: aState('fresh') } });
      seenAgain.stop();
      // The restarted Redis lost 'kept' (revision 1): a writer that knew it writes revision 2, so
      // that revisions never go back (replicas at revision 1 follow it).
      assert.deepEqual(await store.save(aState('kept', { defaultVersion: 2 }), 1), { revision: 2, state: aState('kept', { defaultVersion: 2 }) });
    });
  });
});
