/** Buckets per 100%: weights and percentages resolve to 1/100 of a percent. */
export const BUCKETS = 10_000;

/**
 * The bucket (0..9999) of a routing key: FNV-1a over its UTF-16 code units, so the same key always
 * lands in the same bucket, on every replica and across restarts. `salt` gives independent
 * assignments (the canary split and the shadow sample do not pick the same users).
 */
export function bucketOfKey(key: string, salt = ''): number {
  let hash = 0x811c9dc5;
  const text = salt + '\u0000' + key;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % BUCKETS;
}

/** A bucket drawn from a uniform random number in [0, 1). */
export function bucketOfRandom(random: number): number {
  return Math.min(BUCKETS - 1, Math.floor(random * BUCKETS));
}

/**
 * Whether a bucket falls in the first `percent` of the buckets. Buckets in a smaller share are in
 * every larger one, so raising a canary's weight only moves users onto the canary, never back.
 */
export function inShare(bucket: number, percent: number): boolean {
  return bucket < Math.round(percent * (BUCKETS / 100));
}
