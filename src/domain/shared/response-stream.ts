/**
 * Many responses to one request (Triton's decoupled response factory, `InferenceResponseFactory`):
 * a producer sends responses as they are made, the last one flagged final, and a consumer (a
 * transport) reads them as an async iterable. A failure after some responses is thrown by the
 * iteration once the responses sent before it are read.
 *
 * The buffer between the two is bounded by `capacity`: the producer asks {@link full} before it
 * makes more, and hears {@link onDrain} once the consumer has read enough. Pushing past the bound
 * is allowed (a producer finishing a unit of work it already started), never required. The
 * consumer cancels with {@link cancel}; the producer hears it through {@link onCancel} and stops.
 */
export interface StreamedResponse<T> {
  readonly value: T;
  /** True on the last response of the request (Triton's TRITONSERVER_RESPONSE_COMPLETE_FINAL). */
  readonly final: boolean;
}

/** How a stream ended: its final response sent, failed with an error, or cancelled by its consumer. */
export type StreamOutcome = { readonly kind: 'completed' } | { readonly kind: 'failed'; readonly error: Error } | { readonly kind: 'cancelled'; readonly reason: string };

type Waiter<T> = { resolve: (item: IteratorResult<StreamedResponse<T>>) => void; reject: (error: Error) => void };

export class ResponseStream<T> implements AsyncIterable<StreamedResponse<T>> {
  private readonly buffer: StreamedResponse<T>[] = [];
  private waiter?: Waiter<T>;
  private ended = false;
  private failure?: Error;
  private cancelReason?: string;
  private readonly drainListeners: (() => void)[] = [];
  private readonly cancelListeners: ((reason: string) => void)[] = [];
  private readonly closeListeners: ((outcome: StreamOutcome) => void)[] = [];
  private outcome?: StreamOutcome;

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError('a response stream holds at least one response');
  }

  /** A stream that answers one response, final: what a request with exactly one answer gives. */
  static of<T>(value: T): ResponseStream<T> {
    const stream = new ResponseStream<T>(1);
    stream.end(value);
    return stream;
  }

  /** Responses sent and not yet read. */
  get buffered(): number {
    return this.buffer.length;
  }

  /** Whether the consumer has fallen `capacity` responses behind: the producer should wait for {@link onDrain}. */
  get full(): boolean {
    return this.buffer.length >= this.capacity;
  }

  /** True once the final response is sent or the stream failed: nothing more may be sent. */
  get closed(): boolean {
    return this.ended || this.failure !== undefined;
  }

  /** Why the consumer cancelled, once it has. */
  get cancelled(): string | undefined {
    return this.cancelReason;
  }

  /** Sends a response that is not the last. */
  push(value: T): void {
    this.send({ value, final: false });
  }

  /** Sends the last response. */
  end(value: T): void {
    if (this.closed) return;
    this.send({ value, final: true });
    this.ended = true;
    this.settle({ kind: 'completed' });
  }

  /** Ends the stream with an error, read after the responses already sent. */
  fail(error: Error): void {
    if (this.closed) return;
    this.failure = error;
    this.wake();
    this.settle({ kind: 'failed', error });
  }

  /** The consumer stops reading: the producer is told (once), what was buffered is dropped. */
  cancel(reason = 'cancelled'): void {
    if (this.cancelReason !== undefined) return;
    this.cancelReason = reason;
    this.buffer.length = 0;
    for (const listener of this.cancelListeners.splice(0)) listener(reason);
    if (!this.closed) this.ended = true;
    this.wake();
    this.settle({ kind: 'cancelled', reason });
  }

  /** Calls `listener` each time a read takes the buffer below its capacity. */
  onDrain(listener: () => void): void {
    this.drainListeners.push(listener);
  }

  /** Calls `listener` once when the consumer cancels (at once if it already has). */
  onCancel(listener: (reason: string) => void): void {
    if (this.cancelReason !== undefined) listener(this.cancelReason);
    else this.cancelListeners.push(listener);
  }

  /** Calls `listener` once the stream has ended, whichever way (at once if it has). */
  onClose(listener: (outcome: StreamOutcome) => void): void {
    if (this.outcome) listener(this.outcome);
    else this.closeListeners.push(listener);
  }

  private settle(outcome: StreamOutcome): void {
    if (this.outcome) return;
    this.outcome = outcome;
    for (const listener of this.closeListeners.splice(0)) listener(outcome);
  }

  /** Reads the next response; `done` after the final one (or after a cancel). */
  next(): Promise<IteratorResult<StreamedResponse<T>>> {
    const item = this.buffer.shift();
    if (item) {
      if (this.buffer.length === this.capacity - 1) for (const listener of this.drainListeners) listener();
      return Promise.resolve({ value: item, done: false });
    }
    if (this.failure && this.cancelReason === undefined) return Promise.reject(this.failure);
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  [Symbol.asyncIterator](): AsyncIterator<StreamedResponse<T>> {
    return {
      next: () => this.next(),
      // A consumer leaving its for-await loop early (break, throw) cancels the request.
      return: () => {
        if (!this.ended || this.buffer.length > 0) this.cancel();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  private send(item: StreamedResponse<T>): void {
    if (this.closed) return;
    this.buffer.push(item);
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    if (!waiter) return;
    this.waiter = undefined;
    void this.next().then(waiter.resolve, waiter.reject);
  }
}
