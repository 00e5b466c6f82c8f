import { DomainError } from '../../domain/shared/domain-error.js';
import type { RecordChange, RecordKind, StoredRecord, UnreadableRecord } from '../persistence/revisioned-records.js';
import type { RedisConnection } from './redis-connection.js';
import { schemaErrorMessage } from '../validation/schema-error-message.js';

/**
 * Compare-and-set of one record, and the notification of the change, in one step on the server:
 * the write happens only when the stored revision is the one the writer read (0: none stored), and
 * the change is published to every replica in the same script, so that no write goes unnotified.
 * KEYS: the hash, the channel. ARGV: the name, the expected revision, the new value ('' removes),
 * the message to publish. Returns -1 when written, else the revision stored (-2: unreadable).
 */
const COMPARE_AND_SET = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
local revision = 0
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and type(decoded.revision) == 'number' then revision = decoded.revision else revision = -2 end
end
local expected = tonumber(ARGV[2])
-- A record missing although the writer read one: Redis restarted without its data. It is written
-- afresh at the writer's next revision, so that revisions only grow and replicas that knew the
-- record at that revision follow the write.
if revision ~= expected and not (current == false and expected > 0) then return revision end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
redis.call('PUBLISH', KEYS[2], ARGV[4])
return -1
`;

/**
 * Revisioned records of one kind (model states, rollouts) in one Redis hash (`<prefix><kind>`:
 * field the record's name, value `{ revision, state }` as the file stores write it), changed by
 * compare-and-set and announced on the channel `<prefix><kind>:changes` (the message carries the
 * record, so that replicas need not read it back). One exception to compare-and-set: a record
 * missing from a Redis that lost its data (restarted without persistence) is written at the
 * writer's next revision, so that revisions never go back. A replica that was disconnected reads every
 * record again when it reconnects (`watch`). A value that does not parse (written from outside) is
 * moved to `<prefix><kind>:unreadable` and reported, as the file store sets a file aside.
 */
export class RedisRecords<T extends { readonly name: string }> {
  private readonly hash: string;
  private readonly channel: string;

  constructor(
    private readonly redis: RedisConnection,
    private readonly collection: string,
    private readonly kind: RecordKind<T>,
  ) {
    this.hash = redis.prefix + collection;
    this.channel = `${collection}:changes`;
  }

  async loadAll(): Promise<{ states: StoredRecord<T>[]; unreadable: UnreadableRecord[] }> {
    const values = await this.redis.run(`reading the ${this.collection}`, (redis) => redis.hgetall(this.hash));
    const states: StoredRecord<T>[] = [];
    const unreadable: UnreadableRecord[] = [];
    for (const [name, value] of Object.entries(values)) {
      try {
        states.push(this.parse(name, value));
      } catch (error) {
        unreadable.push({ name, keptAs: await this.setAside(name, value), reason: (error as Error).message });
      }
    }
    states.sort((a, b) => (a.state.name < b.state.name ? -1 : a.state.name > b.state.name ? 1 : 0));
    return { states, unreadable };
  }

  async load(name: string): Promise<StoredRecord<T> | undefined> {
    const value = await this.redis.run(`reading ${this.kind.describe(name)}`, (redis) => redis.hget(this.hash, name));
    if (value === null) return undefined;
    try {
      return this.parse(name, value);
    } catch {
      return undefined;
    }
  }

  async save(state: T, expectedRevision: number): Promise<StoredRecord<T>> {
    requireRevision(expectedRevision);
    const value = JSON.stringify({ revision: expectedRevision + 1, state: this.kind.plain(state) });
    // What a reader will get, and a refusal of a state that could not be read back.
    const stored = this.parse(state.name, value);
    await this.compareAndSet(state.name, expectedRevision, value, `saving ${this.kind.describe(state.name)}`);
    return stored;
  }

  async remove(name: string, expectedRevision: number): Promise<void> {
    requireRevision(expectedRevision);
    if (expectedRevision === 0) {
      const current = (await this.load(name))?.revision ?? 0;
      if (current !== 0) throw this.conflict(name, current, 0);
      return;
    }
    await this.compareAndSet(name, expectedRevision, '', `removing ${this.kind.describe(name)}`);
  }

  /** Every change from now on; each time a connection is (back) up, every record as stored (what was missed). */
  watch(listener: (change: RecordChange<T>) => void): () => void {
    // A change can be heard twice: published, and read again by a catch-up that overlapped it (the
    // catch-up runs when the subscription is confirmed). The same revision is told once.
    const toldRevision = new Map<string, number>();
    const tell = (change: RecordChange<T>) => {
      if (change.stored) {
        if (toldRevision.get(change.name) === change.stored.revision) return;
        toldRevision.set(change.name, change.stored.revision);
      } else {
        toldRevision.delete(change.name);
      }
      listener(change);
    };
    const unsubscribe = this.redis.subscribe(this.channel, (message) => {
      let change: RecordChange<T>;
      try {
        const { name, value } = JSON.parse(message) as { name: string; value: string };
        change = value === '' ? { name } : { name, stored: this.parse(name, value) };
      } catch {
        return; // not a message this store published: ignored (the record is read again at the next connection)
      }
      tell(change);
    });
    const unReconnect = this.redis.onConnected(() => {
      this.loadAll().then(
        ({ states }) => {
          for (const stored of states) tell({ name: stored.state.name, stored });
        },
        () => undefined, // not answering yet: the next connection up reads again
      );
    });
    return () => {
      unsubscribe();
      unReconnect();
    };
  }

  private async compareAndSet(name: string, expectedRevision: number, value: string, what: string): Promise<void> {
    const message = JSON.stringify({ name, value });
    const result = await this.redis.run(what, (redis) => redis.eval(COMPARE_AND_SET, 2, this.hash, this.redis.prefix + this.channel, name, String(expectedRevision), value, message));
    const current = Number(result);
    if (current === -1) return;
    if (current === -2) throw new DomainError('REGISTRY.STATE_NOT_SAVED', `${this.kind.describe(name)} in Redis is not one this server wrote: reading the stores again sets it aside`);
    throw this.conflict(name, current, expectedRevision);
  }

  private conflict(name: string, current: number, expectedRevision: number): DomainError {
    const stored = current === 0 ? 'has no stored state' : `is at revision ${current}`;
    return new DomainError('REGISTRY.STATE_CONFLICT', `${this.kind.describe(name)} ${stored}, not ${expectedRevision}: it was changed meanwhile; read it again and retry`);
  }

  private parse(name: string, value: string): StoredRecord<T> {
    const what = `${this.kind.describe(name)} in Redis`;
    let json: unknown;
    try {
      json = JSON.parse(value);
    } catch (error) {
      throw new Error(`${what} is not valid JSON (${(error as Error).message})`);
    }
    const parsed = this.kind.schema.safeParse(json);
    if (!parsed.success) {
      throw new Error(`${what} is not one this server wrote: ${schemaErrorMessage(parsed.error)}`);
    }
    if (parsed.data.state.name !== name) throw new Error(`${what} holds ${this.kind.describe(parsed.data.state.name)}`);
    return { revision: parsed.data.revision, state: this.kind.plain(parsed.data.state) };
  }

  /** Moves an unreadable value out of the way (kept for an operator); returns where it is kept. */
  private async setAside(name: string, value: string): Promise<string> {
    const field = `${name}.unreadable-${Date.now()}`;
    const aside = `${this.hash}:unreadable`;
    await this.redis.run(`setting aside ${this.kind.describe(name)}`, (redis) => redis.multi().hset(aside, field, value).hdel(this.hash, name).exec());
    return `${field} in the Redis hash ${aside}`;
  }
}

function requireRevision(expectedRevision: number): void {
  if (!Number.isSafeInteger(expectedRevision) || expectedRevision < 0) {
    throw new RangeError(`expected revision ${expectedRevision} is not a non-negative integer`);
  }
}
