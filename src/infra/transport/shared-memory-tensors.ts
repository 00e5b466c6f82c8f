import { invalidRegion, type SystemSharedMemory } from '../../domain/shared-memory/system-shared-memory.js';

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
