/**
 * onnxruntime-common turns float16 data into a Float16Array whenever that global exists (Node 24+),
 * and onnxruntime-node 1.30's native binding cannot read one (N-API has no float16 typed-array kind:
 * it sees zero bytes, "not enough space"). A thread that only hosts sessions hides the global, so
 * float16 tensors stay the Uint16Array bit patterns the rest of the server uses. Call it before the
 * first `ort.Tensor` is made on the thread (onnxruntime-common checks once, lazily).
 */
export function keepFloat16AsUint16(): void {
  delete (globalThis as { Float16Array?: unknown }).Float16Array;
}
