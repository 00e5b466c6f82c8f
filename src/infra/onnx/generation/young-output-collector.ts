/**
 * Output bytes handed to the process after which the young generation is collected. 1 to 8 MB
 * measured alike; 16 MB lost the gain (the tiny GPT at 32 sequences hands 4.3 MB a step).
 */
export const YOUNG_COLLECTION_BYTES = 4 * 1024 * 1024;

/**
 * Collects the young generation once the outputs onnxruntime-node has handed this process since
 * the last collection pass YOUNG_COLLECTION_BYTES. The binding hands every output in a new buffer,
 * and a decode step's presents are the whole batch's KV cache (4.3 MB a step for 32 sequences of
 * the tiny GPT), garbage a step later. Left to V8, which counts them as external memory, they
 * reach the old generation and are freed by mark-compacts: 27% of this process's thread at 32
 * streams (a CPU profile). A scavenge while they are young frees them for a fraction of that
 * (README, Benchmark: more output tokens/s alone and at 32 streams, and a smaller process). The
 * generation worker runs with --expose-gc (startGenerationWorker); without it this does nothing.
 */
export class YoungOutputCollector {
  private handed = 0;

  /** `collect` runs a young-generation collection; by default the process's `gc` (undefined without --expose-gc). */
  constructor(private readonly collect: (() => void) | undefined = globalThis.gc && (() => globalThis.gc!({ type: 'minor' }))) {}

  add(bytes: number): void {
    this.handed += bytes;
  }

  collectIfDue(): void {
    if (this.handed < YOUNG_COLLECTION_BYTES || !this.collect) return;
    this.handed = 0;
    this.collect();
  }
}
