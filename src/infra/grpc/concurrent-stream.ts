import type { ServerDuplexStream } from '@grpc/grpc-js';

/**
 * Serves a bidirectional stream whose requests are independent: each is handled as soon as it
 * arrives (so requests of one stream batch together in the scheduler), and each answer is written
 * when it is ready, in completion order. At most `maxInFlight` requests are handled at once and
 * reading pauses while the client is not reading its answers, so a fast writer cannot grow the
 * server's memory without bound. When the client half-closes, the stream ends after the last
 * answer; when it cancels, nothing more is written. `handle` must not throw (errors are answers).
 */
export function serveConcurrently<Req, Res>(
  call: ServerDuplexStream<Req, Res>,
  handle: (request: Req) => Promise<Res>,
  maxInFlight: number,
): Promise<void> {
  return new Promise((resolve) => {
    let inFlight = 0;
    let clientDone = false;
    let finished = false;
    let waitingForDrain = false;

    const finish = () => {
      if (finished) return;
      finished = true;
      resolve();
    };
    const readWhenAble = () => {
      if (inFlight < maxInFlight && !waitingForDrain) call.resume();
    };
    const settle = () => {
      if (clientDone && inFlight === 0 && !call.cancelled) {
        call.end();
        finish();
      }
    };

    call.on('data', (request: Req) => {
      inFlight++;
      if (inFlight >= maxInFlight) call.pause();
      void handle(request).then((response) => {
        inFlight--;
        if (call.cancelled) return;
        if (!call.write(response)) waitingForDrain = true;
        readWhenAble();
        settle();
      });
    });
    call.on('drain', () => {
      waitingForDrain = false;
      readWhenAble();
    });
    call.on('end', () => {
      clientDone = true;
      settle();
    });
    call.on('cancelled', finish);
    // A stream error (the client reset it) ends the call like a cancel; grpc-js has already closed it.
    call.on('error', finish);
  });
}
