import { Injectable, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  InjectThrottlerOptions,
  InjectThrottlerStorage,
  ThrottlerGuard,
  type ThrottlerLimitDetail,
  type ThrottlerModuleOptions,
  type ThrottlerStorage,
} from '@nestjs/throttler';
import type { Metadata } from '@grpc/grpc-js';
import type { FastifyRequest } from 'fastify';
import { metadataValue, peerAddress } from '../../infra/grpc/call-context.js';
import { ClientQuota, type ClientIdentity } from './client-quota.js';

/**
 * @nestjs/throttler's guard, made transport-aware: a gRPC call's client comes from its metadata
 * and peer, an HTTP request's from its headers and address. One bucket per client (not per
 * route), and a refusal is the domain's CLIENT.RATE_LIMITED, so that the one error filter answers
 * 429 with Retry-After, or RESOURCE_EXHAUSTED with a retry-after trailer. A refused request never
 * reaches a handler, so it never reaches a model's queue.
 */
@Injectable()
export class ClientThrottlerGuard extends ThrottlerGuard {
  constructor(
    @InjectThrottlerOptions() options: ThrottlerModuleOptions,
    @InjectThrottlerStorage() storage: ThrottlerStorage,
    reflector: Reflector,
    private readonly quota: ClientQuota,
  ) {
    super(options, storage, reflector);
  }

  /** The address ceiling (THROTTLE_ADDRESS_RATE) first, whatever the client's name; then the client's own quota. */
  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const { req } = this.getRequestResponse(context);
    const address = req.identity ? (req.identity as ClientIdentity).address : (req as FastifyRequest).ip;
    await this.quota.admitAddress(address, context.getType() === 'rpc' ? 'grpc' : 'http');
    return super.canActivate(context);
  }

  protected override async shouldSkip(): Promise<boolean> {
    return !this.quota.enabled;
  }

  protected override getRequestResponse(context: ExecutionContext): { req: Record<string, any>; res: Record<string, any> } {
    if (context.getType() !== 'rpc') return super.getRequestResponse(context);
    // Unary handlers get (request, metadata, call); stream handlers get (call): both calls carry metadata and peer.
    const call = context.getArgs().find((arg): arg is { metadata: Metadata; getPeer(): string } => typeof arg?.getPeer === 'function');
    if (!call) throw new Error('a gRPC call without its call object reached the throttler');
    const identity: ClientIdentity = {
      header: (name) => metadataValue(call.metadata, name),
      address: peerAddress(call),
    };
    // No response object: a gRPC answer's retry hint is a trailer, which the error filter writes.
    return { req: { identity }, res: {} };
  }

  protected override async getTracker(req: Record<string, any>): Promise<string> {
    if (req.identity) return this.quota.clientOf(req.identity as ClientIdentity);
    const request = req as FastifyRequest;
    return this.quota.clientOf({
      header: (name) => {
        const value = request.headers[name];
        return Array.isArray(value) ? value[0] : value;
      },
      address: request.ip,
    });
  }

  protected override generateKey(_context: ExecutionContext, tracker: string): string {
    return tracker;
  }

  protected override async throwThrottlingException(context: ExecutionContext, detail: ThrottlerLimitDetail): Promise<void> {
    throw this.quota.refusal(detail.tracker, detail.timeToBlockExpire, context.getType() === 'rpc' ? 'grpc' : 'http');
  }
}
