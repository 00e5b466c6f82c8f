import type { IncomingMessage } from 'node:http';
import { TLSSocket, type PeerCertificate } from 'node:tls';
import type { ServerUnaryCall } from '@grpc/grpc-js';

/**
 * The client certificate of an HTTP request's connection, if the client presented one that chains
 * to TLS_CA_FILE (`authorized`); with TLS_CLIENT_AUTH=optional a connection may carry none, or an
 * unverified one, which is no identity.
 */
export function verifiedCertificateOfRequest(request: IncomingMessage): PeerCertificate | undefined {
  const socket = request.socket;
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  const certificate = socket.getPeerCertificate();
  return certificate && certificate.raw ? certificate : undefined;
}

/** The same for a gRPC call: grpc-js fills the auth context only for a verified client certificate. */
export function verifiedCertificateOfCall(call: Partial<Pick<ServerUnaryCall<unknown, unknown>, 'getAuthContext'>> | undefined): PeerCertificate | undefined {
  return call?.getAuthContext?.().sslPeerCertificate;
}

/**
 * The names a certificate answers to: its subject's common name, and each subjectAltName
 * (DNS name, URI such as a SPIFFE ID, e-mail, IP address) without its `DNS:`/`URI:`... prefix.
 * Node quotes a value that holds a comma or quote as a JSON string; it is unquoted here.
 */
export function certificateNames(certificate: PeerCertificate): string[] {
  const names: string[] = [];
  const commonName = certificate.subject?.CN;
  if (commonName) names.push(...(Array.isArray(commonName) ? commonName : [commonName]));
  for (const match of (certificate.subjectaltname ?? '').matchAll(/(?:^|, )[A-Za-z ]+:("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const value = match[1]!;
    names.push(value.startsWith('"') ? (JSON.parse(value) as string) : value);
  }
  return names;
}
