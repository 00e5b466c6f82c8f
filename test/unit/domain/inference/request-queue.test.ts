import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RequestQueue, type Queued } from '../../../../src/domain/inference/request-queue.js';

interface Item extends Queued {
  readonly id: string;
}

const item = (id: string, priorityLevel = 1): Item => ({ id, priorityLevel, waiting: true });

function queueOf(levels: number, ...items: Item[]): RequestQueue<Item> {
  const queue = new RequestQueue<Item>(levels);
  for (const i of items) queue.push(i);
  return queue;
}

const order = (queue: RequestQueue<Item>) => [...queue.inServiceOrder()].map((i) => i.id);

describe('RequestQueue', () => {
  it('serves one level in arrival order', () => {
    const queue = queueOf(1, item('a'), item('b'), item('c'));
    assert.deepEqual(order(queue), ['a', 'b', 'c']);
    assert.equal(queue.first()?.id, 'a');
    assert.equal(queue.size, 3);
  });

  it('serves level 1 first, then each level in turn, each in arrival order', () => {
    const queue = queueOf(3, item('low1', 3), item('mid1', 2), item('high1', 1), item('low2', 3), item('high2', 1));
    assert.deepEqual(order(queue), ['high1', 'high2', 'mid1', 'low1', 'low2']);
    assert.equal(queue.first()?.id, 'high1');
  });

  it('counts the requests of each level', () => {
    const queue = queueOf(2, item('a', 1), item('b', 2), item('c', 2));
    assert.equal(queue.sizeAt(1), 1);
    assert.equal(queue.sizeAt(2), 2);
    assert.equal(queue.size, 3);
  });

  it('drops a removed request wherever it is, and counts it out once', () => {
    const b = item('b', 2);
    const queue = queueOf(2, item('a', 2), b, item('c', 2));
    queue.remove(b);
    queue.remove(b);
    assert.equal(b.waiting, false);
    assert.deepEqual(order(queue), ['a', 'c']);
    assert.equal(queue.sizeAt(2), 2);
    assert.equal(queue.size, 2);
  });

  it('has no first request once every one is removed', () => {
    const a = item('a');
    const queue = queueOf(1, a);
    queue.remove(a);
    assert.equal(queue.first(), undefined);
    assert.equal(queue.size, 0);
  });

  it('moves a delayed request behind the on-time requests of its level, not behind other levels', () => {
    const a = item('a', 1);
    const queue = queueOf(2, a, item('b', 1), item('c', 1), item('low', 2));
    queue.delay(a);
    assert.deepEqual(order(queue), ['b', 'c', 'a', 'low']);
    assert.equal(queue.sizeAt(1), 3, 'a delayed request still counts');
    queue.push(item('d', 1));
    assert.deepEqual(order(queue), ['b', 'c', 'd', 'a', 'low'], 'later on-time arrivals pass it too');
  });

  it('keeps delayed requests in the order they were delayed', () => {
    const [a, b] = [item('a'), item('b')];
    const queue = queueOf(1, a, b, item('c'));
    queue.delay(b);
    queue.delay(a);
    queue.delay(a);
    assert.deepEqual(order(queue), ['c', 'b', 'a']);
  });

  it('does not delay a request that has left the queue', () => {
    const a = item('a');
    const queue = queueOf(1, a, item('b'));
    queue.remove(a);
    queue.delay(a);
    assert.deepEqual(order(queue), ['b']);
  });

  it('drains every live request in service order and is empty after', () => {
    const [a, b, gone] = [item('a', 2), item('b', 1), item('gone', 1)];
    const queue = queueOf(2, a, b, gone);
    queue.remove(gone);
    const drained = queue.drain();
    assert.deepEqual(drained.map((i) => i.id), ['b', 'a']);
    assert.ok(drained.every((i) => !i.waiting));
    assert.equal(queue.size, 0);
    assert.equal(queue.sizeAt(1), 0);
    assert.deepEqual(order(queue), []);
  });

  it('serves requests pushed after a drain', () => {
    const queue = queueOf(1, item('a'));
    queue.drain();
    queue.push(item('b'));
    assert.deepEqual(order(queue), ['b']);
  });
});
