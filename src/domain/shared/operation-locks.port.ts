/**
 * Port to the locks that keep operations on one thing (a model, a rollout) one at a time across
 * every server that shares the state store. Each server also queues its own operations per thing;
 * this lock is what keeps two servers apart.
 */
export abstract class OperationLocks {
  /**
   * Runs `operation` holding the lock named `key`, and releases it when the operation settles. A
   * holder that dies loses the lock once it expires, so it never blocks the others for good.
   * Throws (without running the operation) when the lock cannot be had.
   */
  abstract run<T>(key: string, operation: () => Promise<T>): Promise<T>;
}
