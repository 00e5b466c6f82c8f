import { OperationLocks } from '../../domain/shared/operation-locks.port.js';

/**
 * The locks of a server that shares its state with no other (the embedded default): every change
 * to a model or a rollout is made by this process, whose callers already queue their operations
 * per model, so holding the lock is running the operation.
 */
export class SingleServerLocks extends OperationLocks {
  run<T>(_key: string, operation: () => Promise<T>): Promise<T> {
    return operation();
  }
}
