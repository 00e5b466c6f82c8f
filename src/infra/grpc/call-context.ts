import { FORWARDED_FOR } from '../ingress/forward-to-main.js';
import type { EventEmitter } from 'node:events';
import type { Deadline, Metadata } from '@grpc/grpc-js';
import type { CancellationSignal } from '../../domain/inference/dynamic-batch-scheduler.js';

/** What grpc-js server calls (unary and streaming) share: a cancel flag and event, and the client's deadline. */
export interface GrpcServerCall extends EventEmitter {
  readonly cancelled: boolean;
  getDeadline(): Deadline;
}

/**
 * Fires when the client cancels the call, or its deadline passes (grpc-js then answers
 * DEADLINE_EXCEEDED itself and reports the call cancelled). One signal serves every request of a
 * stream: it holds their listeners itself rather than adding one per request to the call.
 */
export function callCancellation(call: GrpcServerCall): CancellationSignal {
  const listeners = new Set<() => void>();
  let cancelledAt: number | undefined;
  call.once('cancelled', () => {
    cancelledAt = Date.now();
    for (const listener of listeners) listener();
    listeners.clear();
  });
  const deadline = call.getDeadline();
  const deadlineAt = deadline instanceof Date ? deadline.getTime() : deadline;
  // The client's deadline timer cancels the call at the client's deadline, which is earlier than
  // the server's (the server counts the timeout from when it read the call): by the call's transit
  // time, which a busy machine makes tens of milliseconds. A cancel that close to the deadline is
  // the deadline's: within a fifth of the timeout, at least 5 ms and at most 250 ms.
  const timeoutMs = deadlineAt - Date.now();
  const deadlineSlackMs = Math.max(5, Math.min(250, timeoutMs / 5));
  return {
    get aborted() {
      return call.cancelled;
    },
    // grpc-js's own deadline timer reports the call cancelled: that is a timeout, not a cancel.
    get deadlinePassed() {
      if (!call.cancelled || !Number.isFinite(deadlineAt)) return false;
      return (cancelledAt ?? Date.now()) >= deadlineAt - deadlineSlackMs;
    },
    onAbort(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/** The time left until the call's deadline, in microseconds (at least 1), or undefined when the client set none. */
export function microsUntilDeadline(call: GrpcServerCall): number | undefined {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  if (!Number.isFinite(at)) return undefined;
  return Math.max(1, Math.round((at - Date.now()) * 1000));
}

/**
 * The client's IP address from grpc-js's peer string (`1.2.3.4:5678`, `[::1]:5678`, `ipv4:...`), without its port.
 * A call over a Unix socket (grpc-js says `unknown`) came from an ingress thread (INGRESS_THREADS),
 * the only peer of the main thread's private socket: its client is the one it names in `x-forwarded-for`.
 */
export function peerAddress(call: { getPeer(): string; metadata?: Metadata }): string {
  const raw = call.getPeer();
  if (raw === 'unknown' && call.metadata) return metadataValue(call.metadata, FORWARDED_FOR) ?? raw;
  const peer = raw.replace(/^ipv[46]:/, '');
  const bracketed = /^\[([^\]]+)\]/.exec(peer);
  if (bracketed) return bracketed[1];
  const lastColon = peer.lastIndexOf(':');
  return lastColon > 0 && peer.indexOf(':') === lastColon ? peer.slice(0, lastColon) : peer;
}

/** A metadata key's first value when it is text (binary `-bin` keys and absent ones are undefined). */
export function metadataValue(metadata: Metadata, name: string): string | undefined {
  const value = metadata.get(name)[0];
  return typeof value === 'string' ? value : undefined;
}

/**
 * The call's text metadata as a record (a command's `headers`): each key's first value; binary
 * `-bin` keys are left out. grpc-js names keys in lower case. Built once per call (a stream's
 * requests share it).
 */
export function metadataRecord(metadata: Metadata): Readonly<Record<string, string>> {
  const record: Record<string, string> = {};
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    const first = values[0];
    if (typeof first === 'string') record[key] = first;
  }
  return record;
}
