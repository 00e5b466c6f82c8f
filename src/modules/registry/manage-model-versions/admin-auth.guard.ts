import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { AdminToken } from './admin-token.js';

/** Every admin call carries `Authorization: Bearer <token>`; anything else is a 401. */
@Injectable()
export class AdminAuthGuard implements CanActivate {
  constructor(private readonly token: AdminToken) {}

  canActivate(context: ExecutionContext): boolean {
    const header = context.switchToHttp().getRequest<FastifyRequest>().headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) throw new DomainError('AUTH.UNAUTHENTICATED', 'the admin API needs an Authorization: Bearer <token> header');
    if (!this.token.accepts(match[1])) throw new DomainError('AUTH.UNAUTHENTICATED', 'the admin token is not valid');
    return true;
  }
}
