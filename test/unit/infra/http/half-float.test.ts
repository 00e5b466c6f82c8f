import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fromHalfBits, toHalfBits } from '../../../../src/infra/http/half-float.js';

const ONE = 0x3c00;
const POSITIVE_INFINITY = 0x7c00;
const NEGATIVE_INFINITY = 0xfc00;
const NEGATIVE_ZERO = 0x8000;
/** One unit in the last place of a half in [1, 2). */
const ULP_AT_ONE = 2 ** -10;

const isNaNBits = (bits: number) => (bits & 0x7c00) === 0x7c00 && (bits & 0x03ff) !== 0;
const hex = (bits: number) => `0x${bits.toString(16).padStart(4, '0')}`;

function assertHalf(value: number, expectedBits: number): void {
  assert.equal(hex(toHalfBits(value)), hex(expectedBits), `toHalfBits(${value})`);
}

describe('toHalfBits / fromHalfBits', () => {
  describe('exactly representable values', () => {
    const exact: [string, number, number][] = [
      ['1', 1, ONE],
      ['-2', -2, 0xc000],
      ['0.5', 0.5, 0x3800],
      ['the largest half, 65504', 65504, 0x7bff],
      ['the smallest normal, 2^-14', 2 ** -14, 0x0400],
      ['the smallest subnormal, 2^-24', 2 ** -24, 0x0001],
      ['the largest subnormal', 2 ** -14 - 2 ** -24, 0x03ff],
      ['zero', 0, 0x0000],
    ];
    for (const [label, value, bits] of exact) {
      it(`${label} converts both ways`, () => {
        assertHalf(value, bits);
        assert.equal(fromHalfBits(bits), value);
      });
    }
  });

  describe('rounding to nearest, ties to even', () => {
    it('a tie between an even and an odd half goes to the even one', () => {
      assertHalf(1 + ULP_AT_ONE / 2, ONE); // between 0x3c00 (even) and 0x3c01
      assertHalf(1 + 3 * (ULP_AT_ONE / 2), ONE + 2); // between 0x3c01 and 0x3c02 (even)
    });

    it('a value just past a tie goes to the nearer half', () => {
      assertHalf(1 + ULP_AT_ONE / 2 + 2 ** -20, ONE + 1);
      assertHalf(1 + ULP_AT_ONE / 2 - 2 ** -20, ONE);
    });

    it('a double just past a tie rounds once, not through float32 first', () => {
      // 1 + 2^-11 + 2^-40 is above the tie, but float32 rounds it onto the tie, which then goes to even.
      assertHalf(1 + ULP_AT_ONE / 2 + 2 ** -40, ONE + 1);
    });

    it('rounds subnormals to even too', () => {
      assertHalf(2 ** -25, 0x0000); // half the smallest subnormal: tie between 0 and 1
      assertHalf(3 * 2 ** -25, 0x0002); // tie between 1 and 2
      assertHalf(1.5 * 2 ** -25, 0x0001);
    });

    it('a rounding carry moves up to the next exponent', () => {
      assertHalf(2 - ULP_AT_ONE / 4, 0x4000); // rounds up to 2
    });
  });

  describe('out of range', () => {
    it('overflows to signed infinity from the tie above 65504', () => {
      assertHalf(65519, 0x7bff);
      assertHalf(65520, POSITIVE_INFINITY);
      assertHalf(1e6, POSITIVE_INFINITY);
      assertHalf(-1e6, NEGATIVE_INFINITY);
    });

    it('underflows to a signed zero below half the smallest subnormal', () => {
      assertHalf(2 ** -26, 0x0000);
      assertHalf(-(2 ** -26), NEGATIVE_ZERO);
    });
  });

  describe('special values', () => {
    it('keeps infinities', () => {
      assertHalf(Infinity, POSITIVE_INFINITY);
      assertHalf(-Infinity, NEGATIVE_INFINITY);
      assert.equal(fromHalfBits(POSITIVE_INFINITY), Infinity);
      assert.equal(fromHalfBits(NEGATIVE_INFINITY), -Infinity);
    });

    it('keeps NaN a NaN', () => {
      assert.ok(isNaNBits(toHalfBits(NaN)), hex(toHalfBits(NaN)));
      assert.ok(Number.isNaN(fromHalfBits(0x7e00)));
      assert.ok(Number.isNaN(fromHalfBits(0x7c01)));
    });

    it('keeps the sign of zero', () => {
      assertHalf(-0, NEGATIVE_ZERO);
      assert.ok(Object.is(fromHalfBits(NEGATIVE_ZERO), -0));
      assert.ok(Object.is(fromHalfBits(0x0000), 0));
    });
  });

  it('every non-NaN half survives fromHalfBits then toHalfBits', () => {
    const changed: string[] = [];
    for (let bits = 0; bits <= 0xffff; bits++) {
      if (isNaNBits(bits)) continue;
      if (toHalfBits(fromHalfBits(bits)) !== bits) changed.push(hex(bits));
    }
    assert.deepEqual(changed, []);
  });
});
