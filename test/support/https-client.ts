/**
 * An HTTPS test client on node:https: Node's fetch takes no CA or client certificate per request
 * (that needs an undici Agent, which Node does not export). Each request opens its own connection
 * (a full TLS handshake, no session reuse) unless an agent is given, and reports the server's
 * certificate as that connection saw it.
 */
import { Agent, request } from 'node:https';
import type { PeerCertificate, TLSSocket } from 'node:tls';

export interface TlsClient {
  /** The CA the server's certificate must chain to. */
  readonly ca?: Buffer;
  /** The client certificate and its key (mutual TLS). */
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

export interface HttpsAnswer {
  readonly status: number;
  readonly text: string;
  readonly body: any;
  /** The server's certificate on this request's connection. */
  readonly peer: PeerCertificate;
  /** The connection's local port: the same one for requests over a kept-alive connection. */
  readonly localPort: number;
}

export interface HttpsRequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: unknown;
  readonly tls?: TlsClient;
  /** A keep-alive agent (see {@link keepAliveAgent}); default: a new connection per request. */
  readonly agent?: Agent;
}

export function httpsRequest(url: string, options: HttpsRequestOptions = {}): Promise<HttpsAnswer> {
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? (body === undefined ? 'GET' : 'POST'),
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers },
        ...(options.agent ? { agent: options.agent } : { agent: false, ...options.tls }),
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const peer = socket.getPeerCertificate();
        const localPort = socket.localPort ?? 0;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          resolve({ status: res.statusCode ?? 0, text, body: parsed, peer, localPort });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** One kept-alive connection for every request made with it (maxSockets 1). */
export function keepAliveAgent(tls: TlsClient): Agent {
  return new Agent({ keepAlive: true, maxSockets: 1, ...tls });
}
