import type { InferenceResponse } from '../../domain/inference/inference-request.js';
import { invalidRegion, type RegionSlice, type SystemSharedMemory } from '../../domain/shared-memory/system-shared-memory.js';
import { encodeRawTensor } from './raw-tensor.codec.js';

/** The outputs of one request that go to shared memory: held from decoding to answer, whatever the transport. */
export interface SharedMemoryOutputs {
  /** Whether an output goes to shared memory (its answer then carries no data). */
  inSharedMemory(name: string): boolean;
  /** Writes those outputs' raw bytes into their slices (RunInferenceCommand.deliver). */
  deliver(response: InferenceResponse): void;
  /** Lets go of the regions, answered or not. */
  release(): void;
}

/**
 * Checks the slices the request names for its outputs (before anything runs: a bad region is a 400
 * that costs no computation) and holds their regions until `release`.
 */
export function holdSharedMemoryOutputs(sharedMemory: SystemSharedMemory, slices: ReadonlyMap<string, RegionSlice>): SharedMemoryOutputs {
  if (slices.size === 0) return { inSharedMemory: () => false, deliver: () => undefined, release: () => undefined };
  const reserved = sharedMemory.reserve(slices);
  return {
    inSharedMemory: (name) => slices.has(name),
    deliver: (response) => {
      for (const output of response.outputs) if (slices.has(output.name)) reserved.write(output.name, encodeRawTensor(output));
    },
    release: () => reserved.release(),
  };
}

/**
 * Reads a request's inputs from shared memory within `maxBytes` in all (MAX_REQUEST_BYTES, the
 * bound of a body): a region may be a sparse object far larger than memory, and what is read is
 * held in memory like a body.
 */
export function sharedMemoryInputs(sharedMemory: SystemSharedMemory, maxBytes: number): Pick<SystemSharedMemory, 'read'> {
  let total = 0;
  return {
    read: (slice, input) => {
      total += slice.byteSize;
      if (total > maxBytes) {
        throw invalidRegion(
          `input '${input}': its ${slice.byteSize} bytes from shared memory region '${slice.region}' take the request's inputs from shared memory past ${maxBytes} bytes (MAX_REQUEST_BYTES)`,
        );
      }
      return sharedMemory.read(slice, input);
    },
  };
}
