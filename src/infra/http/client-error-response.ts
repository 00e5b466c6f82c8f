import { STATUS_CODES, maxHeaderSize } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionError } from 'fastify';

export interface SlowClientLimits {
  /** HTTP_HEADERS_TIMEOUT_MS */
  readonly headersTimeoutMs: number;
  /** HTTP_REQUEST_TIMEOUT_MS */
  readonly requestTimeoutMs: number;
}

/**
 * Answers what Node's HTTP parser refuses before any route sees the request (Fastify's
 * `clientErrorHandler`): a request that is not valid HTTP/1.1 (Content-Length beside
 * Transfer-Encoding, Content-Length twice, a bad chunk size...: llhttp's reason, 400), headers over
 * Node's size limit (431), and a client too slow to send its headers or its body (408). The answer
 * is the server's usual `{"error": "<message>"}`, and the connection is closed: what follows on it
 * cannot be trusted to start a request.
 */
export function clientErrorResponder(limits: SlowClientLimits): (error: ConnectionError, socket: Socket) => void {
  const answered = new WeakSet<Socket>();
  return (error, socket) => {
    // The parser refuses each later chunk too: the first refusal was answered.
    if (error.code === 'ECONNRESET' || socket.destroyed || answered.has(socket)) return;
    const { status, message } = describe(error, socket, limits);
    // A response already on its way cannot be replaced: the connection is cut.
    if (!socket.writable || responseOf(socket)?.headersSent) {
      socket.destroy(error);
      return;
    }
    answered.add(socket);
    const body = JSON.stringify({ error: message });
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    // A lingering close (as nginx's): closing at once with the client's next bytes still unread
    // makes the kernel reset the connection, and the client may lose the answer before reading it.
    // What it still sends is read and dropped until it closes, for LINGER_MS at most.
    socket.resume();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  };
}

/** How long a connection refused by the parser is read and dropped before it is closed. */
const LINGER_MS = 1000;

function describe(error: ConnectionError & { reason?: string }, socket: Socket, limits: SlowClientLimits): { status: number; message: string } {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    // Node hands a request to the server once its headers are complete, with its response.
    return responseOf(socket)
      ? { status: 408, message: `the request was not received in full within HTTP_REQUEST_TIMEOUT_MS (${limits.requestTimeoutMs} ms)` }
      : { status: 408, message: `the request headers were not received within HTTP_HEADERS_TIMEOUT_MS (${limits.headersTimeoutMs} ms)` };
  }
  if (error.code === 'HPE_HEADER_OVERFLOW') return { status: 431, message: `the request headers are larger than ${maxHeaderSize} bytes` };
  return { status: 400, message: `malformed HTTP request: ${error.reason ?? error.message} (${error.code})` };
}

/** The response Node attached to the socket for the request in progress (Node's own timeout answer checks it too). */
function responseOf(socket: Socket): { headersSent: boolean } | undefined {
  return (socket as Socket & { _httpMessage?: { headersSent: boolean } | null })._httpMessage ?? undefined;
}
