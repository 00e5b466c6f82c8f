import { Injectable, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  InjectThrottlerOptions,
  InjectThrottlerStorage,
  ThrottlerGuard,
  type ThrottlerLimitDetail,
  type ThrottlerModuleOptions,
  type ThrottlerOptions,
  type ThrottlerStorage,
} from '@nestjs/throttler';
import { THROTTLER_BLOCK_DURATION, THROTTLER_KEY_GENERATOR, THROTTLER_LIMIT, THROTTLER_SKIP, THROTTLER_TRACKER, THROTTLER_TTL } from '@nestjs/throttler/dist/throttler.constants.js';
import type { Metadata } from '@grpc/grpc-js';
import type { FastifyRequest } from 'fastify';
import { metadataValue, peerAddress } from '../../infra/grpc/call-context.js';
import { ClientQuota, type ClientIdentity } from './client-quota.js';
import { headerGetter } from '../../infra/http/route-params.js';

/** A throttler's numbers, when neither the route nor its class overrides them (@Throttle, @SkipThrottle...): the same for every request of the route. */
interface PlainThrottler {
  readonly name: string;
  readonly limit: number;
  readonly ttl: number;
  readonly blockDuration: number;
}

const ROUTE_METADATA = [THROTTLER_SKIP, THROTTLER_LIMIT, THROTTLER_TTL, THROTTLER_BLOCK_DURATION, THROTTLER_TRACKER, THROTTLER_KEY_GENERATOR];

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

  /** Per route handler: its throttlers' plain numbers, or null when the route overrides any (then the library's own path decides). */
  private readonly plainByHandler = new WeakMap<object, readonly PlainThrottler[] | null>();

  /**
   * The address ceiling (THROTTLE_ADDRESS_RATE) first, whatever the client's name; then the client's
   * own quota. With neither limit on, the guard returns at once. A route that overrides nothing
   * takes the library's steps (tracker, key, the storage's increment, the X-RateLimit-* headers,
   * the refusal) without its per-request reflector lookups and awaits: its throttlers' numbers are
   * read once per route (measured: the library's per-request path was ~25 µs of main-thread CPU).
   */
  override async canActivate(context: ExecutionContext): Promise<boolean> {
    if (!this.quota.enabled && !this.quota.limitsAddresses) return true;
    const { req, res } = this.getRequestResponse(context);
    const address = req.identity ? (req.identity as ClientIdentity).address : (req as FastifyRequest).ip;
    await this.quota.admitAddress(address, context.getType() === 'rpc' ? 'grpc' : 'http');
    if (!this.quota.enabled) return true;
    const plain = this.plainThrottlers(context);
    if (!plain) return super.canActivate(context);
    const tracker = await this.getTracker(req);
    for (const throttler of plain) {
      const { totalHits, timeToExpire, isBlocked, timeToBlockExpire } = await this.storageService.increment(tracker, throttler.ttl, throttler.limit, throttler.blockDuration, throttler.name);
      const suffix = throttler.name === 'default' ? '' : `-${throttler.name}`;
      if (isBlocked) {
        await this.throwThrottlingException(context, { limit: throttler.limit, ttl: throttler.ttl, key: tracker, tracker, totalHits, timeToExpire, isBlocked, timeToBlockExpire });
      }
      this.setResponseHeader(res, `${this.headerPrefix}-Limit${suffix}`, throttler.limit);
      this.setResponseHeader(res, `${this.headerPrefix}-Remaining${suffix}`, Math.max(0, throttler.limit - totalHits));
      this.setResponseHeader(res, `${this.headerPrefix}-Reset${suffix}`, timeToExpire);
    }
    return true;
  }

  private plainThrottlers(context: ExecutionContext): readonly PlainThrottler[] | null {
    const handler = context.getHandler();
    let plain = this.plainByHandler.get(handler);
    if (plain === undefined) {
      const targets = [handler, context.getClass()];
      const overridden = this.throttlers.some((t) => ROUTE_METADATA.some((key) => this.reflector.getAllAndOverride(key + t.name, targets) !== undefined));
      const numbers = (t: ThrottlerOptions) => ({ limit: t.limit, ttl: t.ttl, blockDuration: t.blockDuration ?? t.ttl });
      const simple = (t: ThrottlerOptions) => !t.skipIf && !t.ignoreUserAgents && !t.getTracker && !t.generateKey && t.setHeaders !== false && Object.values(numbers(t)).every((v) => typeof v === 'number');
      const common = this.commonOptions as { skipIf?: unknown; ignoreUserAgents?: unknown; setHeaders?: boolean };
      const commonSimple = !common.skipIf && !common.ignoreUserAgents && common.setHeaders !== false;
      plain =
        !overridden && commonSimple && this.throttlers.every(simple)
          ? this.throttlers.map((t) => ({ name: t.name ?? 'default', ...(numbers(t) as { limit: number; ttl: number; blockDuration: number }) }))
          : null;
      this.plainByHandler.set(handler, plain);
    }
    return plain;
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
      header: headerGetter(request.headers),
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
