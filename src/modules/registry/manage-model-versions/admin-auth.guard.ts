import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Metadata } from '@grpc/grpc-js';
import type { FastifyRequest } from 'fastify';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { AppConfig } from '../../../infra/config/app-config.js';
import { certificateNames, verifiedCertificateOfCall, verifiedCertificateOfRequest } from '../../../infra/tls/client-certificate.js';
import { AdminToken } from './admin-token.js';

/**
 * What every admin call needs, by ADMIN_AUTH: `token` (the default): `Bearer <token>`, in the
 * `Authorization` header over HTTP, in the `authorization` metadata over gRPC; `client-cert`: a
 * client certificate that TLS verified against TLS_CA_FILE and, with ADMIN_CLIENT_NAMES, named
 * there; `both`: the two. Without them: 401 / UNAUTHENTICATED; a verified certificate that is not
 * on the list: 403 / PERMISSION_DENIED. With ADMIN_PORT, the gRPC repository methods are refused
 * (PERMISSION_DENIED, AUTH.ADMIN_PORT_ONLY): the admin API is on that port only.
 */
@Injectable()
export class AdminAuthGuard implements CanActivate {
  constructor(
    private readonly token: AdminToken,
    private readonly config: AppConfig,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    // With ADMIN_PORT the admin API is off the public ports: the gRPC port's repository methods are
    // refused whatever the credentials (the HTTP port's admin routes are, by AdminListener).
    if (context.getType() === 'rpc' && this.config.ADMIN_PORT !== undefined) {
      throw new DomainError('AUTH.ADMIN_PORT_ONLY', 'the admin API is served on the admin port only (ADMIN_PORT), over HTTP: POST /v2/repository/index, /v2/repository/models/{model}/load or /unload there');
    }
    if (this.config.ADMIN_AUTH !== 'token') this.checkClientCertificate(context);
    if (this.config.ADMIN_AUTH !== 'client-cert') this.checkToken(context);
    return true;
  }

  private checkToken(context: ExecutionContext): void {
    const credentials = context.getType() === 'rpc' ? context.switchToRpc().getContext<Metadata>().get('authorization')[0] : context.switchToHttp().getRequest<FastifyRequest>().headers.authorization;
    const match = typeof credentials === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(credentials) : null;
    if (!match) throw new DomainError('AUTH.UNAUTHENTICATED', 'the admin API needs an Authorization: Bearer <token> header (gRPC: authorization metadata)');
    if (!this.token.accepts(match[1])) throw new DomainError('AUTH.UNAUTHENTICATED', 'the admin token is not valid');
  }

  private checkClientCertificate(context: ExecutionContext): void {
    // A gRPC handler's arguments are (request, metadata, call); grpc-js' call holds the connection's auth context.
    const certificate = context.getType() === 'rpc' ? verifiedCertificateOfCall(context.getArgByIndex(2)) : verifiedCertificateOfRequest(context.switchToHttp().getRequest<FastifyRequest>().raw);
    if (!certificate) throw new DomainError('AUTH.UNAUTHENTICATED', 'the admin API needs a client certificate signed by the CA of TLS_CA_FILE');
    const allowed = this.config.ADMIN_CLIENT_NAMES;
    if (allowed === undefined) return;
    const names = certificateNames(certificate);
    if (!names.some((name) => allowed.includes(name))) {
      throw new DomainError('AUTH.FORBIDDEN', `the client certificate (${names.join(', ') || 'no names'}) is not one of ADMIN_CLIENT_NAMES`);
    }
  }
}
