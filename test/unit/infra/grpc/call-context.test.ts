import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { callCancellation, type GrpcServerCall } from '../../../../src/infra/grpc/call-context.js';

/** A grpc-js server call as callCancellation sees it: a cancel flag and event, and a deadline. */
class FakeCall extends EventEmitter implements GrpcServerCall {
  cancelled = false;
  constructor(private readonly deadline: number) {
    super();
  }
  getDeadline(): number {
    return this.deadline;
  }
  cancel(): void {
    this.cancelled = true;
    this.emit('cancelled');
  }
}

describe('callCancellation', () => {
  it("counts a cancel that comes just before the deadline as the deadline's (the client's timer fires first), and an early one as a cancel", (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    const late = new FakeCall(Date.now() + 100);
    const lateSignal = callCancellation(late);
    const early = new FakeCall(Date.now() + 100);
    const earlySignal = callCancellation(early);
    t.mock.timers.tick(10);
    early.cancel();
    t.mock.timers.tick(75); // 15 ms before the server's deadline: within a fifth of the 100 ms timeout
    late.cancel();
    assert.equal(earlySignal.aborted, true);
    assert.equal(earlySignal.deadlinePassed, false, 'cancelled 90 ms before its deadline: a cancel');
    assert.equal(lateSignal.aborted, true);
    assert.equal(lateSignal.deadlinePassed, true, 'cancelled 15 ms before its deadline: the deadline passed');
  });

  it('gives a call without a deadline no deadline, and tells its listeners once', (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    const call = new FakeCall(Infinity);
    const signal = callCancellation(call);
    let heard = 0;
    signal.onAbort(() => heard++);
    call.cancel();
    call.emit('cancelled');
    assert.equal(heard, 1);
    assert.equal(signal.deadlinePassed, false);
  });
});
