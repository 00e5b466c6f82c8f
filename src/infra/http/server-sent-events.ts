import type { ServerResponse } from 'node:http';
import type { ResponseStream } from '../../domain/shared/response-stream.js';

/**
 * Writes a stream of responses as Server-Sent Events (`data: <json>\n\n`), one event per response,
 * as Triton's generate_stream and OpenAI's `stream: true` do. The socket's own backpressure is the
 * flow control: the next response is read from the stream only once the previous one was taken by
 * the socket, so a slow reader leaves its responses in the stream's bounded buffer (where the
 * producer sees them and pauses) rather than in the server's memory. A client that goes away
 * cancels the stream. A failure after the events began is itself an event (`error(...)`): the
 * status line has been sent by then.
 */
export async function writeEventStream<T>(
  res: ServerResponse,
  stream: ResponseStream<T>,
  format: {
    /** The data of each response's event. */
    readonly event: (value: T, final: boolean) => string;
    /** The data of the event that reports a failure after the stream began. */
    readonly error: (error: Error) => string;
    /** Data sent after the final response (OpenAI's `[DONE]`). */
    readonly done?: string;
  },
): Promise<void> {
  const gone = () => {
    if (!res.writableFinished) stream.cancel('the client closed the connection');
  };
  res.once('close', gone);
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
  // Headers now, not with the first token: the client sees the stream begin.
  res.flushHeaders();
  try {
    for await (const { value, final } of stream) {
      if (!(await send(res, format.event(value, final)))) return;
    }
    if (format.done !== undefined) await send(res, format.done);
  } catch (error) {
    await send(res, format.error(error as Error));
  } finally {
    res.removeListener('close', gone);
    if (!res.destroyed) res.end();
  }
}

/** Writes one event; false when the connection is gone. Waits for the socket to take it (its 'drain'). */
function send(res: ServerResponse, data: string): Promise<boolean> {
  if (res.destroyed || res.writableEnded) return Promise.resolve(false);
  if (res.write(`data: ${data}\n\n`)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const drained = () => {
      res.removeListener('close', closed);
      resolve(true);
    };
    const closed = () => {
      res.removeListener('drain', drained);
      resolve(false);
    };
    res.once('drain', drained);
    res.once('close', closed);
  });
}
