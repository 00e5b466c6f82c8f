import type { RuntimeKey } from '../shared/model-version-id.js';

/** What one version's scheduler holds now. */
export interface SchedulerQueueStatus {
  readonly key: string;
  readonly queued: number;
  readonly runningBatches: number;
}

/** Port to the schedulers' queues, as health and metrics report them (the inference context implements it). */
export abstract class SchedulerQueues {
  /** Per version that has served: requests waiting in its queue and batches running. */
  abstract status(): SchedulerQueueStatus[];
  /** Requests waiting in the queue of the version loaded under `key`; undefined before it served any. */
  abstract queuedOf(key: RuntimeKey): number | undefined;
}
