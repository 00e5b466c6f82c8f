/** IEEE 754 half-precision conversions: FP16 tensors travel as raw 16-bit patterns (Uint16Array). */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function toHalfBits(value: number): number {
  f32[0] = value;
  // Round to odd on the way to float32, so that the rounding to half below is the only one.
  const inexact = Number.isFinite(value) && f32[0] !== value;
  const bits = inexact ? ((Math.abs(f32[0]) > Math.abs(value) ? u32[0] - 1 : u32[0]) | 1) >>> 0 : u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0); // Inf or NaN
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00; // overflow to Inf
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign; // underflow to zero
    mantissa |= 0x800000;
    const shift = 14 - halfExponent;
    const half = mantissa >>> shift;
    const remainder = mantissa & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    return sign | (half + (remainder > midpoint || (remainder === midpoint && (half & 1)) ? 1 : 0));
  }
  const half = sign | (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  // Round to nearest even; a carry into the exponent is still the right result.
  return half + (remainder > 0x1000 || (remainder === 0x1000 && (half & 1)) ? 1 : 0);
}

export function fromHalfBits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}
