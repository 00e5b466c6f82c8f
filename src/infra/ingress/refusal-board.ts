import { deserializeError, serializeError, type BoardMessage, type WatchedUrl } from './ingress-messages.js';

/**
 * The refusals an infer request's URL decides because a queue is full (the main thread's
 * RefusalBeforeReading), as the ingress threads need them.
 */
export interface QueueRefusals {
  /** Whether the server knows the model (only a known model's URLs are watched). */
  knows(modelName: string): boolean;
  /** The refusal a request to this model (and version, as its URL wrote it) gets now because a queue is full, and the version it is counted under. */
  queueFull(modelName: string, versionText: string | undefined): { readonly error: Error; readonly version?: number } | undefined;
  /** Calls `watcher` with a model's name each time queueFull may have changed for it. */
  watch(watcher: (modelName: string) => void): void;
}

/**
 * URLs the board holds (a known model, or a known model and a version): beyond them, a request is
 * read and refused by the main thread as without threads.
 */
const MAX_SLOTS = 1024;
/** While a slot is set, how often the main thread asks again (a rollout or a serving version may change without a queue changing). */
const RECHECK_MS = 50;

interface Slot {
  readonly index: number;
  readonly url: WatchedUrl;
  /** The refusal a request to the URL gets now, and the version it is counted under. */
  refusal?: { readonly error: Error; readonly version?: number };
  /** The last refusal the slot was set for (what the threads answer and count under, even once cleared). */
  last?: { readonly error: Error; readonly version?: number };
}

const keyOf = (model: string, version: string | undefined): string => (version === undefined ? model : `${model}\n${version}`);

/**
 * The main thread's side of the queue-refusal board: one flag per URL an ingress thread met, in
 * memory every thread shares, set while a request to that URL would be refused because the queue
 * is full. A thread reads its flag before reading a body, as the main thread's middleware asks the
 * scheduler, so under overload the refused requests cost no body, no decode and no message. The
 * scheduler stays the judge: it tells when its answer changes, and the board writes it at once; a
 * flag the thread read a moment too early lets a request through to be refused after reading, as
 * the middleware's own answer can be overtaken by the queue.
 */
export class RefusalBoard {
  readonly buffer = new SharedArrayBuffer(MAX_SLOTS * Int32Array.BYTES_PER_ELEMENT);
  private readonly flags = new Int32Array(this.buffer);
  private readonly slots: Slot[] = [];
  private readonly byKey = new Map<string, Slot>();
  private readonly byModel = new Map<string, Slot[]>();
  private recheck?: NodeJS.Timeout;

  constructor(
    private readonly refusals: QueueRefusals,
    private readonly broadcast: (message: BoardMessage) => void,
  ) {
    refusals.watch((model) => this.update(model));
  }

  /** A thread met a URL: a known model's gets a slot (every thread is told), up to MAX_SLOTS. */
  watch(url: WatchedUrl): void {
    const key = keyOf(url.model, url.version);
    // A URL given a slot was told to every thread (a second thread asked before it heard).
    if (this.byKey.has(key) || this.slots.length >= MAX_SLOTS || !this.refusals.knows(url.model)) return;
    const slot: Slot = { index: this.slots.length, url: { model: url.model, version: url.version } };
    this.slots.push(slot);
    this.byKey.set(key, slot);
    this.byModel.set(url.model, [...(this.byModel.get(url.model) ?? []), slot]);
    this.broadcast({ kind: 'watched', url: slot.url, slot: slot.index });
    this.publish(slot);
  }

  /** What a set slot's refusals are counted as: the model, the version and the error. */
  refusalAt(index: number): { readonly model: string; readonly version?: number; readonly error: Error } | undefined {
    const slot = this.slots[index];
    return slot?.last && { model: slot.url.model, version: slot.last.version, error: slot.last.error };
  }

  close(): void {
    clearInterval(this.recheck);
  }

  private update(model: string): void {
    for (const slot of this.byModel.get(model) ?? []) this.publish(slot);
  }

  private publish(slot: Slot): void {
    const refusal = this.refusals.queueFull(slot.url.model, slot.url.version);
    slot.refusal = refusal;
    // A scheduler keeps one error per queue: it is sent to the threads when it is a new one.
    if (refusal && refusal.error !== slot.last?.error) this.broadcast({ kind: 'refusal', slot: slot.index, error: serializeError(refusal.error) });
    if (refusal) slot.last = refusal;
    Atomics.store(this.flags, slot.index, refusal ? 1 : 0);
    if (refusal && !this.recheck) {
      this.recheck = setInterval(() => this.recheckSet(), RECHECK_MS);
      this.recheck.unref();
    }
  }

  private recheckSet(): void {
    const set = this.slots.filter((slot) => slot.refusal);
    for (const slot of set) this.publish(slot);
    if (this.slots.every((slot) => !slot.refusal)) {
      clearInterval(this.recheck);
      this.recheck = undefined;
    }
  }
}

/** URLs a thread asks about before its next report, at most (a client may name many unknown models). */
const MAX_ASKED = 4096;

/**
 * An ingress thread's view of the board: the refusal a URL gets now, read from shared memory, and
 * how many it answered (counted on the main thread with its report).
 */
export class RefusalView {
  private readonly flags: Int32Array;
  private readonly slots = new Map<string, number>();
  private readonly errors: Error[] = [];
  /** URLs asked about and not (yet) given a slot: asked again after the next report. */
  private readonly asked = new Set<string>();
  private refused = new Map<number, number>();

  constructor(
    buffer: SharedArrayBuffer,
    private readonly ask: (url: WatchedUrl) => void,
  ) {
    this.flags = new Int32Array(buffer);
  }

  /** The refusal a request to this URL gets now, counted; undefined when it is to be read. */
  refusal(model: string, version: string | undefined): Error | undefined {
    const key = keyOf(model, version);
    const slot = this.slots.get(key);
    if (slot === undefined) {
      if (!this.asked.has(key) && this.asked.size < MAX_ASKED) {
        this.asked.add(key);
        this.ask({ model, version });
      }
      return undefined;
    }
    const error = Atomics.load(this.flags, slot) === 1 ? this.errors[slot] : undefined;
    if (error) this.refused.set(slot, (this.refused.get(slot) ?? 0) + 1);
    return error;
  }

  onMessage(message: BoardMessage): void {
    if (message.kind === 'refusal') {
      this.errors[message.slot] = deserializeError(message.error);
      return;
    }
    const key = keyOf(message.url.model, message.url.version);
    this.slots.set(key, message.slot);
    this.asked.delete(key);
  }

  /** The refusals answered since the last call, by slot; URLs not given a slot may be asked about again. */
  takeRefused(): [slot: number, count: number][] {
    const refused = [...this.refused];
    this.refused = new Map();
    this.asked.clear();
    return refused;
  }
}
