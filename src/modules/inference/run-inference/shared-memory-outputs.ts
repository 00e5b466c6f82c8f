import type { InferenceResponse } from '../../../domain/inference/inference-request.js';
import type { RegionSlice, SystemSharedMemory } from '../../../domain/shared-memory/system-shared-memory.js';
import { encodeRawTensor } from '../../../infra/transport/raw-tensor.codec.js';

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
