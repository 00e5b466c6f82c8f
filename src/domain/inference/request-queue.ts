/**
 * The waiting requests of one model version, by priority level (1 first). Each level keeps its
 * requests in arrival order, and those whose DELAY timeout passed in a second list served after
 * the first (Triton's `timeout_action: DELAY`). Removal is lazy: a request that leaves early
 * (cancelled, expired) is marked and skipped, and the lists are compacted as they are consumed.
 */
export interface Queued {
  /** False once the request has been taken for a batch, answered or dropped. */
  waiting: boolean;
  readonly priorityLevel: number;
}

interface Level<T extends Queued> {
  readonly onTime: T[];
  readonly delayed: T[];
  /** Live requests at this level, both lists. */
  size: number;
}

export class RequestQueue<T extends Queued> {
  private readonly levels: Level<T>[];
  private total = 0;

  /** `levelCount` >= 1; levels are numbered 1..levelCount. */
  constructor(levelCount: number) {
    this.levels = Array.from({ length: levelCount }, () => ({ onTime: [], delayed: [], size: 0 }));
  }

  get size(): number {
    return this.total;
  }

  sizeAt(priorityLevel: number): number {
    return this.levels[priorityLevel - 1].size;
  }

  push(request: T): void {
    const level = this.levels[request.priorityLevel - 1];
    level.onTime.push(request);
    level.size++;
    this.total++;
  }

  /** Marks a request as gone; the caller has already decided its answer. */
  remove(request: T): void {
    if (!request.waiting) return;
    request.waiting = false;
    this.levels[request.priorityLevel - 1].size--;
    this.total--;
  }

  /** Moves a request behind every on-time request of its level. */
  delay(request: T): void {
    if (!request.waiting) return;
    const level = this.levels[request.priorityLevel - 1];
    const index = level.onTime.indexOf(request);
    if (index < 0) return;
    level.onTime.splice(index, 1);
    level.delayed.push(request);
  }

  /** Live requests in the order they are served: level by level, on-time before delayed. */
  *inServiceOrder(): Generator<T> {
    for (const level of this.levels) {
      if (level.size === 0) continue;
      for (const list of [level.onTime, level.delayed]) {
        compactHead(list);
        for (const request of list) if (request.waiting) yield request;
      }
    }
  }

  /** The request served next, if any. */
  first(): T | undefined {
    for (const request of this.inServiceOrder()) return request;
    return undefined;
  }

  /** Removes every live request and returns them. */
  drain(): T[] {
    const all = [...this.inServiceOrder()];
    for (const request of all) this.remove(request);
    for (const level of this.levels) {
      level.onTime.length = 0;
      level.delayed.length = 0;
    }
    return all;
  }
}

/** Drops gone requests from the front, where taken ones gather; the rest are skipped when met. */
function compactHead(list: Queued[]): void {
  let gone = 0;
  while (gone < list.length && !list[gone].waiting) gone++;
  if (gone > 0) list.splice(0, gone);
}
