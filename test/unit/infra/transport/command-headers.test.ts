// What a transport puts in a command's `headers` and `cancellation`: plain text headers, ids released.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Metadata } from '@grpc/grpc-js';
import { metadataRecord } from '../../../../src/infra/grpc/call-context.js';
import { headerRecord } from '../../../../src/infra/http/route-params.js';
import { InProcessCancellations } from '../../../../src/infra/transport/in-process-cancellations.js';
import { FakeCancellationSignal } from '../../support/fake-batch-runner.js';

describe("a command's headers", () => {
  it('HTTP: the headers object itself when every value is text (no copy); the first value of an array otherwise', () => {
    const text = { 'x-env': 'staging', host: 'h' };
    assert.equal(headerRecord(text), text);
    assert.deepStrictEqual(headerRecord({ 'x-env': 'staging', 'set-cookie': ['a=1', 'b=2'], gone: undefined }), { 'x-env': 'staging', 'set-cookie': 'a=1' });
  });

  it('gRPC: the first text value of each key; binary -bin keys left out', () => {
    const metadata = new Metadata();
    metadata.add('x-user', 'u1');
    metadata.add('x-user', 'u2');
    metadata.add('trace-bin', Buffer.of(1, 2));
    assert.deepStrictEqual(metadataRecord(metadata), { 'x-user': 'u1' });
  });
});

describe('InProcessCancellations', () => {
  it('resolves an id to the signal registered under it until released; ids are not reused', () => {
    const cancellations = new InProcessCancellations();
    const first = new FakeCancellationSignal();
    const id = cancellations.register(first);
    const other = cancellations.register(new FakeCancellationSignal());
    assert.notEqual(id, other);
    assert.equal(cancellations.signalOf(id), first);
    cancellations.release(id);
    cancellations.release(other);
    assert.equal(cancellations.signalOf(id), undefined);
    assert.equal(cancellations.size, 0);
    assert.notEqual(cancellations.register(first), id);
  });
});
