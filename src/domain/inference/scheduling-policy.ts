/**
 * How a model version's requests are queued and batched: Triton's `dynamic_batching` settings,
 * with durations in microseconds as in Triton's model configuration.
 */

/** What happens to a request whose queue timeout passes before it is scheduled. */
export type TimeoutAction = 'REJECT' | 'DELAY';

/** Triton's `ModelQueuePolicy`. */
export interface QueuePolicy {
  readonly timeoutAction: TimeoutAction;
  /** Longest a request may wait in the queue; 0 means no timeout of its own. */
  readonly defaultTimeoutMicros: number;
  /** Whether a request's own timeout applies; it may only lower the default. */
  readonly allowTimeoutOverride: boolean;
  /** Most requests waiting at this priority level; 0 means unbounded. */
  readonly maxQueueSize: number;
}

export interface SchedulingPolicy {
  /** Whether requests are merged into batches (Triton: `max_batch_size > 1`). */
  readonly batching: boolean;
  /** Rows per batch at most; 0 when the model has no batch dimension. */
  readonly maxBatchSize: number;
  /** Batch sizes (in rows) that are dispatched at once, without waiting for more. */
  readonly preferredBatchSizes: readonly number[];
  /** Longest the oldest request of a forming batch waits for others to join it. */
  readonly maxQueueDelayMicros: number;
  /** Choose the wait from the observed arrival rate and run cost, bounded by `maxQueueDelayMicros`. */
  readonly adaptiveQueueDelay: boolean;
  /** Number of priority levels; level 1 is served first. 0 means a single level. */
  readonly priorityLevels: number;
  /** Level of a request that names none (1..priorityLevels; ignored with a single level). */
  readonly defaultPriorityLevel: number;
  readonly defaultQueuePolicy: QueuePolicy;
  /** Per-level overrides of the default queue policy. */
  readonly priorityQueuePolicies: ReadonlyMap<number, QueuePolicy>;
}

/**
 * The queue policy of a model that configures none: unbounded, no queue timeout, and a client's
 * timeout honoured (Triton defaults `allow_timeout_override` to false; a deadline the client sets
 * is one it will stop waiting at, so computing past it only wastes the instance).
 */
export const DEFAULT_QUEUE_POLICY: QueuePolicy = {
  timeoutAction: 'REJECT',
  defaultTimeoutMicros: 0,
  allowTimeoutOverride: true,
  maxQueueSize: 0,
};

/**
 * The wait for a batch to fill when a model configures none. Triton's default is 0: a free
 * instance takes whatever is queued. Under load batches still form, from the requests that
 * arrive while every instance is busy; 0 keeps a lone request's latency at its compute time.
 */
export const DEFAULT_MAX_QUEUE_DELAY_MICROS = 0;

export function queuePolicyOf(policy: SchedulingPolicy, priorityLevel: number): QueuePolicy {
  return policy.priorityQueuePolicies.get(priorityLevel) ?? policy.defaultQueuePolicy;
}
