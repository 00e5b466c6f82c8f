import { DomainError, type DomainErrorCode, type DomainErrorDetails } from '../../domain/shared/domain-error.js';
import type { RunInferenceCommand } from '../../domain/inference/inference-use-case.port.js';
import type { InferenceResponse, InputHeader } from '../../domain/inference/inference-request.js';
import type { Tensor } from '../../domain/inference/tensor.js';

/**
 * What an ingress thread and the main thread (the owner of every scheduler and of the state) say
 * to each other over a MessagePort: plain data only, tensor buffers transferred, never shared.
 */

/** Which protocol an ingress thread read a request from (the rate limit counts refusals by it). */
export type IngressTransport = 'http' | 'grpc';

/** A request an ingress thread decoded, for the main thread to run. */
export interface ForwardedInfer {
  readonly kind: 'infer';
  /** Unique among the thread's requests in progress: the answer and a cancellation name it. */
  readonly id: number;
  readonly transport: IngressTransport;
  /** The client's source address (what the rate limits and the access log see). */
  readonly address: string;
  /** The command, without a cancellation id (the main thread registers its own) or shared memory (never on this path). */
  readonly command: Omit<RunInferenceCommand, 'cancellation' | 'sharedMemoryOutputs' | 'background'>;
}

/** The client of a forwarded request went away: its work is dropped as the main thread's own would be. */
interface ForwardedCancel {
  readonly kind: 'cancel';
  readonly id: number;
  /** The call's deadline passed (a timeout, not a cancel). */
  readonly deadlinePassed?: boolean;
}

/** An HTTP answer an ingress thread sent itself: method, route template, status, milliseconds. */
export type AnsweredRow = readonly [method: string, route: string | undefined, status: number, elapsedMs: number];

/** What a request declares, read before its elements are decoded (what the main thread judges it on). */
export interface DeclaredRequest {
  readonly version?: number;
  readonly inputs: readonly InputHeader[];
  readonly requestedOutputs: readonly string[];
}

/**
 * A request the main thread judges before it is run, as its own controllers do: the model it names
 * first (an unknown model is a 404 whatever the body), then what it declares against the versions
 * that may serve it. Sent for a large body before its elements are decoded (a wrong one then costs
 * a scan, not a decode), and for a request the thread refused itself (`error`: the judgement's
 * refusal comes first, as on the main thread). Answered 'kept' (the thread's own error stands, or
 * nothing is wrong) or with the failure to send; a refusal is counted.
 */
interface JudgeRequest {
  readonly kind: 'judge';
  readonly id: number;
  readonly model: string;
  readonly declared?: DeclaredRequest;
  readonly error?: SerializedError;
  /** Whether `error` counts as a failed inference request (what the body said), or is the transport's (a body Fastify could not read). */
  readonly counted: boolean;
}

/**
 * What an ingress thread answered since its last report (the main thread owns the metrics): HTTP
 * answers, and refusals it read off the refusal board (count by slot). `flush`: the report answers
 * that flush request.
 */
interface IngressReport {
  readonly kind: 'report';
  readonly answered: readonly AnsweredRow[];
  readonly refused: readonly (readonly [slot: number, count: number])[];
  readonly flush?: number;
}

/** An infer URL an ingress thread met, as the refusal board (refusal-board.ts) holds it. */
export interface WatchedUrl {
  readonly model: string;
  readonly version?: string;
}

/** The refusal board tells every thread which slot holds a URL's state, and the error a set slot answers. */
export type BoardMessage = { readonly kind: 'watched'; readonly url: WatchedUrl; readonly slot: number } | { readonly kind: 'refusal'; readonly slot: number; readonly error: SerializedError };

/** A thread met an infer URL the refusal board holds no slot for. */
interface WatchUrl {
  readonly kind: 'watch';
  readonly url: WatchedUrl;
}

interface IngressListening {
  readonly kind: 'listening';
  readonly httpPort: number;
  readonly grpcPort: number;
}

interface IngressClosed {
  readonly kind: 'closed';
}

export type FromIngress = ForwardedInfer | JudgeRequest | ForwardedCancel | IngressReport | WatchUrl | IngressListening | IngressClosed;

/** The rate limit's numbers after a request took its token (the X-RateLimit-* headers). */
export interface RateLimitState {
  readonly limit: number;
  readonly remaining: number;
  readonly reset: number;
}

interface InferAnswer {
  readonly kind: 'answer';
  readonly id: number;
  readonly response: InferenceResponse;
  readonly rateLimit?: RateLimitState;
}

interface InferFailure {
  readonly kind: 'failure';
  readonly id: number;
  readonly error: SerializedError;
}

/** The main thread serves this request itself (a generative model's ModelInfer): the thread forwards the call as it came. */
interface InferHandOver {
  readonly kind: 'hand-over';
  readonly id: number;
}

/** The judgement finds nothing more wrong than the thread said: its own error (if any) stands. */
interface RefusalKept {
  readonly kind: 'kept';
  readonly id: number;
}

/** Asks for a report of everything counted so far (before /metrics is rendered). */
interface FlushRequest {
  readonly kind: 'flush';
  readonly id: number;
}

/** Stop accepting, finish the requests in progress, then say 'closed'. */
interface CloseRequest {
  readonly kind: 'close';
}

export type ToIngress = InferAnswer | InferHandOver | InferFailure | RefusalKept | FlushRequest | CloseRequest | BoardMessage;

/** An error as it crosses threads: a domain error keeps its code and details; any other, its message. */
export interface SerializedError {
  readonly code?: DomainErrorCode;
  readonly message: string;
  readonly details?: DomainErrorDetails;
}

export function serializeError(error: unknown): SerializedError {
  if (error instanceof DomainError) return { code: error.code, message: error.message, details: { ...error.details } };
  return { message: error instanceof Error ? error.message : String(error) };
}

export function deserializeError(error: SerializedError): Error {
  return error.code ? new DomainError(error.code, error.message, error.details) : new Error(error.message);
}

/**
 * The buffers of tensors to transfer with a message rather than copy. A tensor whose data is a view
 * of a larger buffer (a batch's output, a request body) is replaced by a copy of its own bytes:
 * transferring the view's buffer would take the rest away from its other owners, and cloning it
 * would copy all of it. BYTES elements (strings) are cloned.
 */
export function ownedTensors(tensors: readonly Tensor[]): { tensors: Tensor[]; transfer: ArrayBuffer[] } {
  const transfer: ArrayBuffer[] = [];
  const owned = tensors.map((tensor) => {
    const data = tensor.data;
    if (!ArrayBuffer.isView(data)) return tensor;
    const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer && !transfer.includes(data.buffer);
    // A Buffer's slice() is a view; a copy of its bytes is a Uint8Array (what the tensor's datatype reads anyway).
    const own = whole ? data : Buffer.isBuffer(data) ? new Uint8Array(data) : (data.slice() as typeof data);
    transfer.push(own.buffer as ArrayBuffer);
    return own === data ? tensor : ({ ...tensor, data: own } as Tensor);
  });
  return { tensors: owned, transfer };
}
