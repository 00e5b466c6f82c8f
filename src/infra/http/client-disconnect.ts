import type { ServerResponse } from 'node:http';
import type { CancellationSignal } from '../../domain/inference/dynamic-batch-scheduler.js';

/**
 * Fires when the connection closes before the answer was sent: the client will never read it.
 * A response that finished also emits 'close', which is not a disconnect.
 */
export function clientDisconnect(response: ServerResponse): CancellationSignal {
  return {
    get aborted() {
      return !response.writableFinished && (response.destroyed || response.socket?.destroyed === true);
    },
    onAbort(listener) {
      const onClose = () => {
        if (!response.writableFinished) listener();
      };
      response.once('close', onClose);
      return () => response.removeListener('close', onClose);
    },
  };
}
