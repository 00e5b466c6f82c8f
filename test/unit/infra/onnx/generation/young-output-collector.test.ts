import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { YOUNG_COLLECTION_BYTES, YoungOutputCollector } from '../../../../../src/infra/onnx/generation/young-output-collector.js';

describe('YoungOutputCollector', () => {
  it('collects once the outputs handed since the last collection pass the threshold, then counts again from zero', () => {
    let collections = 0;
    const collector = new YoungOutputCollector(() => collections++);
    collector.add(YOUNG_COLLECTION_BYTES - 1);
    collector.collectIfDue();
    assert.equal(collections, 0, 'below the threshold');
    collector.add(1);
    collector.collectIfDue();
    assert.equal(collections, 1, 'at the threshold');
    collector.collectIfDue();
    assert.equal(collections, 1, 'nothing handed since');
    collector.add(YOUNG_COLLECTION_BYTES / 2);
    collector.add(YOUNG_COLLECTION_BYTES / 2);
    collector.collectIfDue();
    assert.equal(collections, 2, 'many small outputs add up');
  });

  it('does nothing in a process without gc exposed', () => {
    const collector = new YoungOutputCollector(undefined);
    collector.add(10 * YOUNG_COLLECTION_BYTES);
    assert.doesNotThrow(() => collector.collectIfDue());
  });
});
