import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** What the server wrote on a raw connection before closing it. */
export interface RawHttpAnswer {
  /** The status of the first response, or 0 when the server wrote none. */
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** Its body, parsed when it is JSON. */
  readonly body: any;
  /** Whether the server closed the connection (the exchange waits for it). */
  readonly closed: boolean;
}

/** A piece of a raw request: bytes to write, or a pause (the client going quiet for a while). */
export type RawPart = string | Buffer | { readonly pauseMs: number };

/**
 * Speaks HTTP/1.1 over a bare TCP socket, for requests no HTTP client would send: the parts are
 * written in order (pauses included), then the client waits, silent, until the server closes the
 * connection, and the first response it wrote is parsed. A server that never closes fails the
 * test by its timeout.
 */
export async function rawHttpExchange(url: string, parts: readonly RawPart[]): Promise<RawHttpAnswer> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  const received: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => received.push(chunk));
  socket.on('error', () => undefined); // a reset still closes: the answer tells what came before
  const closed = once(socket, 'close');
  await once(socket, 'connect');
  for (const part of parts) {
    if (socket.destroyed) break; // the server has answered and closed: the rest would go nowhere
    if (typeof part === 'object' && !Buffer.isBuffer(part)) await sleep(part.pauseMs);
    else await write(socket, part);
  }
  await closed;
  return { ...parseResponse(Buffer.concat(received).toString('latin1')), closed: true };
}

/** The request line and headers of a request, CRLF-terminated, with the blank line that ends them. */
export function requestHead(method: string, path: string, headers: Readonly<Record<string, string | number>> | readonly [string, string | number][]): string {
  const lines = (Array.isArray(headers) ? headers : Object.entries(headers)).map(([name, value]) => `${name}: ${value}`);
  return `${method} ${path} HTTP/1.1\r\nHost: localhost\r\n${lines.map((line) => `${line}\r\n`).join('')}\r\n`;
}

function write(socket: Socket, bytes: string | Buffer): Promise<void> {
  return new Promise((resolve) => socket.write(bytes, () => resolve()));
}

function parseResponse(text: string): Omit<RawHttpAnswer, 'closed'> {
  const match = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(text);
  if (!match) return { status: 0, headers: {}, body: text };
  const headers = Object.fromEntries(
    match[2]!.split('\r\n').map((line) => [line.slice(0, line.indexOf(':')).trim().toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
  );
  const length = headers['content-length'] === undefined ? undefined : Number(headers['content-length']);
  const raw = Buffer.from(match[3]!, 'latin1').subarray(0, length).toString('utf8');
  const body = (headers['content-type'] ?? '').includes('json') && raw ? JSON.parse(raw) : raw;
  return { status: Number(match[1]), headers, body };
}
