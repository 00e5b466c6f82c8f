import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { requestCoding, responseCoding } from '../../../../src/infra/http/content-coding.js';

describe('requestCoding (Content-Encoding)', () => {
  it('reads none, identity, gzip and deflate, in any case', () => {
    assert.equal(requestCoding(undefined), 'identity');
    assert.equal(requestCoding(''), 'identity');
    assert.equal(requestCoding('identity'), 'identity');
    assert.equal(requestCoding('gzip'), 'gzip');
    assert.equal(requestCoding(' GZip '), 'gzip');
    assert.equal(requestCoding('deflate'), 'deflate');
  });

  it('knows no other coding, nor several', () => {
    for (const header of ['br', 'zstd', 'compress', 'gzip, deflate', 'x-gzip', ['gzip', 'gzip']]) assert.equal(requestCoding(header), undefined, String(header));
  });
});

describe("responseCoding (Accept-Encoding), Triton's rule", () => {
  it('answers identity unless gzip or deflate is asked for', () => {
    assert.equal(responseCoding(undefined), 'identity');
    assert.equal(responseCoding(''), 'identity');
    assert.equal(responseCoding('br, zstd, *'), 'identity');
    assert.equal(responseCoding('identity'), 'identity');
  });

  it('answers the coding tritonclient asks for', () => {
    assert.equal(responseCoding('gzip'), 'gzip');
    assert.equal(responseCoding('deflate'), 'deflate');
  });

  it('takes the highest q, the first of equals, and never a coding at q=0', () => {
    assert.equal(responseCoding('gzip;q=0.5, deflate'), 'deflate');
    assert.equal(responseCoding('deflate, gzip'), 'deflate');
    assert.equal(responseCoding('gzip, deflate, br'), 'gzip');
    assert.equal(responseCoding('identity;q=1, gzip;q=0.9'), 'identity');
    assert.equal(responseCoding('GZIP ; q=0.8'), 'gzip');
    assert.equal(responseCoding('gzip;q=0'), 'identity');
    assert.equal(responseCoding('gzip;q=abc, deflate;q=0.1'), 'deflate', 'a malformed weight skips its coding');
  });
});
