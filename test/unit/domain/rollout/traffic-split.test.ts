import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BUCKETS, bucketOfKey, bucketOfRandom, inShare } from '../../../../src/domain/rollout/traffic-split.js';
import { seededRandom } from '../../support/rollout.mother.js';

const KEYS = Array.from({ length: 20_000 }, (_, i) => `user-${i}`);

describe('traffic split', () => {
  describe('bucketOfKey', () => {
    it('puts a key in the same bucket every time, within 0..9999', () => {
      for (const key of KEYS.slice(0, 500)) {
        const bucket = bucketOfKey(key, 'canary');
        assert.ok(Number.isInteger(bucket) && bucket >= 0 && bucket < BUCKETS, `bucket ${bucket} of ${key}`);
        assert.equal(bucketOfKey(key, 'canary'), bucket);
      }
    });

    it('is FNV-1a over the salt, a NUL and the key: fixed values, the same on every replica and after a restart', () => {
      // FNV-1a 32 of "\u0000" is 0x050c5d1f; of "canary\u0000user-1" is computed once and pinned here.
      assert.equal(bucketOfKey(''), 0x050c5d1f % BUCKETS);
      assert.equal(bucketOfKey('user-1', 'canary'), bucketOfKey('user-1', 'canary'));
      assert.equal(bucketOfKey('user-1', 'canary'), fnv1a('canary\u0000user-1') % BUCKETS);
      assert.equal(bucketOfKey('ünïcödé-🙂', 'shadow'), fnv1a('shadow\u0000ünïcödé-🙂') % BUCKETS);
    });

    it('spreads keys evenly: every tenth of the buckets holds 10% of 20,000 keys, within 1%', () => {
      const perDecile = new Array<number>(10).fill(0);
      for (const key of KEYS) perDecile[Math.floor(bucketOfKey(key, 'canary') / 1000)]++;
      for (const [decile, count] of perDecile.entries()) {
        const share = count / KEYS.length;
        assert.ok(share > 0.09 && share < 0.11, `decile ${decile} holds ${(share * 100).toFixed(2)}% of the keys`);
      }
    });

    it('gives independent assignments per salt: the canary and shadow samples are not the same users', () => {
      const inCanary = KEYS.filter((key) => inShare(bucketOfKey(key, 'canary'), 10));
      const alsoInShadow = inCanary.filter((key) => inShare(bucketOfKey(key, 'shadow'), 10));
      const share = alsoInShadow.length / inCanary.length;
      assert.ok(share > 0.07 && share < 0.13, `${(share * 100).toFixed(2)}% of the canary's users are in the 10% shadow sample (independent: about 10%)`);
    });
  });

  describe('bucketOfRandom', () => {
    it('maps [0, 1) onto every bucket, clamping 1 to the last', () => {
      assert.equal(bucketOfRandom(0), 0);
      assert.equal(bucketOfRandom(0.00005), 0);
      assert.equal(bucketOfRandom(0.0001), 1);
      assert.equal(bucketOfRandom(0.5), 5000);
      assert.equal(bucketOfRandom(0.99999), 9999);
      assert.equal(bucketOfRandom(1), 9999);
    });

    it('at 10%, takes between 9% and 11% of 20,000 seeded draws', () => {
      const random = seededRandom(1);
      let hits = 0;
      for (let i = 0; i < 20_000; i++) if (inShare(bucketOfRandom(random()), 10)) hits++;
      assert.ok(hits > 1800 && hits < 2200, `${hits} of 20,000 draws`);
    });
  });

  describe('inShare', () => {
    it('resolves to 1/100 of a percent', () => {
      assert.equal(inShare(0, 0), false, '0% takes nobody');
      assert.equal(inShare(0, 0.01), true);
      assert.equal(inShare(1, 0.01), false);
      assert.equal(inShare(999, 10), true);
      assert.equal(inShare(1000, 10), false);
      assert.equal(inShare(2549, 25.5), true);
      assert.equal(inShare(2550, 25.5), false);
      assert.equal(inShare(BUCKETS - 1, 100), true, '100% takes everybody');
    });

    it('is monotonic: a key in a share is in every larger one, so a growing canary only gains users', () => {
      const weights = [0.5, 1, 5, 10, 25, 50, 99.99, 100];
      for (const key of KEYS.slice(0, 5000)) {
        const bucket = bucketOfKey(key, 'canary');
        for (let i = 1; i < weights.length; i++) {
          if (inShare(bucket, weights[i - 1])) assert.ok(inShare(bucket, weights[i]), `${key} is in ${weights[i - 1]}% but not in ${weights[i]}%`);
        }
      }
    });

    it('at 10%, takes between 9% and 11% of 20,000 keys', () => {
      const hits = KEYS.filter((key) => inShare(bucketOfKey(key, 'canary'), 10)).length;
      assert.ok(hits > 1800 && hits < 2200, `${hits} of 20,000 keys`);
    });
  });
});

/** FNV-1a 32 over UTF-16 code units, written out independently of the code under test. */
function fnv1a(text: string): number {
  let hash = 2166136261;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Number((BigInt(hash) * 16777619n) % 4294967296n);
  }
  return hash;
}
