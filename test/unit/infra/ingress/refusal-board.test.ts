import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { DomainError } from '../../../../src/domain/shared/domain-error.js';
import type { BoardMessage } from '../../../../src/infra/ingress/ingress-messages.js';
import { RefusalBoard, RefusalView, type QueueRefusals } from '../../../../src/infra/ingress/refusal-board.js';

/** The main thread's answers, as a test sets them: models known, and which (model, version) queues refuse. */
class FakeRefusals implements QueueRefusals {
  readonly known = new Set(['classifier', 'other']);
  readonly full = new Map<string, { error: Error; version?: number }>();
  private watcher?: (model: string) => void;

  knows(model: string): boolean {
    return this.known.has(model);
  }
  queueFull(model: string, version: string | undefined): { error: Error; version?: number } | undefined {
    return this.full.get(`${model}/${version ?? ''}`);
  }
  watch(watcher: (model: string) => void): void {
    this.watcher = watcher;
  }
  /** The scheduler says its answer changed. */
  changed(model: string): void {
    this.watcher!(model);
  }
}

const queueFull = new DomainError('INFERENCE.QUEUE_FULL', 'the queue of this model is full (max_queue_size 1); retry later', { retryAfterSeconds: 1 });

describe('the refusal board between the main thread and ingress threads', () => {
  let refusals: FakeRefusals;
  let board: RefusalBoard;
  let view: RefusalView;
  let asked: number;

  beforeEach(() => {
    mock.timers.enable({ apis: ['setInterval'] });
    refusals = new FakeRefusals();
    asked = 0;
    // One thread, its messages delivered at once (postMessage's order is kept).
    board = new RefusalBoard(refusals, (message: BoardMessage) => view.onMessage(message));
    view = new RefusalView(board.buffer, (url) => {
      asked++;
      board.watch(url);
    });
  });
  afterEach(() => {
    board.close();
    mock.timers.reset();
  });

  it('refuses a watched URL while its queue is full, with the scheduler\'s error, and counts each refusal under its version', () => {
    assert.equal(view.refusal('classifier', undefined), undefined, 'the first request of a URL is read: its slot is being made');
    refusals.full.set('classifier/', { error: queueFull, version: 3 });
    refusals.changed('classifier');
    const refusal = view.refusal('classifier', undefined);
    assert.ok(refusal instanceof DomainError);
    assert.equal(refusal.code, 'INFERENCE.QUEUE_FULL');
    assert.equal(refusal.message, queueFull.message);
    assert.equal(refusal.details.retryAfterSeconds, 1);
    view.refusal('classifier', undefined);
    refusals.full.clear();
    refusals.changed('classifier');
    assert.equal(view.refusal('classifier', undefined), undefined, 'the queue found room');
    const [[slot, count]] = view.takeRefused();
    assert.equal(count, 2);
    assert.deepEqual(board.refusalAt(slot), { model: 'classifier', version: 3, error: queueFull }, 'counted as last set, though cleared since');
  });

  it('keeps a URL with a version apart from the one without', () => {
    view.refusal('classifier', '2');
    view.refusal('classifier', undefined);
    refusals.full.set('classifier/2', { error: queueFull, version: 2 });
    refusals.changed('classifier');
    assert.ok(view.refusal('classifier', '2'));
    assert.equal(view.refusal('classifier', undefined), undefined);
  });

  it('gives no slot to an unknown model, and asks again about it only after a report (it may be loaded since)', () => {
    for (let i = 0; i < 3; i++) view.refusal('nobody', undefined);
    assert.equal(asked, 1);
    view.takeRefused();
    refusals.known.add('nobody');
    view.refusal('nobody', undefined);
    assert.equal(asked, 2);
    refusals.full.set('nobody/', { error: queueFull });
    refusals.changed('nobody');
    assert.ok(view.refusal('nobody', undefined));
  });

  it('bounds what a client naming many models costs: asks between reports, and slots', () => {
    for (let i = 0; i < 10_000; i++) view.refusal(`unknown-${i}`, undefined);
    assert.equal(asked, 4096);
    for (let i = 0; i < 2000; i++) board.watch({ model: 'classifier', version: String(i + 1) });
    refusals.full.set('classifier/2000', { error: queueFull });
    refusals.changed('classifier');
    view.takeRefused();
    assert.equal(view.refusal('classifier', '2000'), undefined, 'beyond the board\'s slots a URL is read and judged by the main thread');
  });

  it('clears a set flag the scheduler did not clear (a rollout started, the serving version changed) on its next check', () => {
    view.refusal('classifier', undefined);
    refusals.full.set('classifier/', { error: queueFull });
    refusals.changed('classifier');
    assert.ok(view.refusal('classifier', undefined));
    refusals.full.clear(); // no scheduler told it
    assert.ok(view.refusal('classifier', undefined), 'until the check');
    mock.timers.tick(50);
    assert.equal(view.refusal('classifier', undefined), undefined);
  });
});
