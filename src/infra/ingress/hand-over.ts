import type { SharedMemoryReader } from '../http/binary-tensor.codec.js';

/**
 * Thrown while an ingress thread decodes a request that only the main thread can serve (it reads
 * or writes shared memory, whose regions are the main thread's): the request is then forwarded
 * whole, as it came.
 */
export const HAND_OVER = Symbol('hand over to the main thread');

/** A reader of shared memory that hands the request over. */
export const NO_SHARED_MEMORY: SharedMemoryReader = {
  read: () => {
    throw HAND_OVER;
  },
};
