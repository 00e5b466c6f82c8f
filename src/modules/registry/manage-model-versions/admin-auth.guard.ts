import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Metadata } from '@grpc/grpc-js';
import type { FastifyRequest } from 'fastify';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { AdminToken } from './admin-token.js';

/**
 * Every admin call carries `Bearer <token>`: in the `Authorization` header over HTTP, in the
 * `authorization` metadata over gRPC. Anything else is a 401 / UNAUTHENTICATED.
 */
@Injectable()
export class AdminAuthGuard implements CanActivate {
  constructor(private readonly token: AdminToken) {}

  canActivate(context: ExecutionContext): boolean {
    const credentials = context.getType() === 'rpc' ? context.switchToRpc().getContext<Metadata>().get('authorization')[0] : context.switchToHttp().getRequest<FastifyRequest>().headers.authorization;
    const match = typeof credentials === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(credentials) : null;
    if (!match) throw new DomainError('AUTH.UNAUTHENTICATED', 'the admin API needs an Authorization: Bearer <token> header (gRPC: authorization metadata)');
    if (!this.token.accepts(match[1])) throw new DomainError('AUTH.UNAUTHENTICATED', 'the admin token is not valid');
    return true;
  }
}
