import type { Tensor } from '../inference/tensor.js';
import { DomainError } from '../shared/domain-error.js';

/**
 * Triton's system shared memory extension (`extension_shared_memory.md`): a client creates a POSIX
 * shared memory object (`shm_open(key)`), registers a range of it under a name, then names that
 * region in an inference request instead of sending tensor bytes: inputs are read from it, outputs
 * written into it. Regions hold raw tensor bytes (raw-tensor layout: little-endian, row-major, a
 * BYTES element is a 4-byte length and its bytes).
 */

/** A registered region, as the status call reports it. */
export interface SharedMemoryRegionStatus {
  readonly name: string;
  /** The shared memory object's key, as the client gave it (e.g. `/input_simple`). */
  readonly key: string;
  /** Where the region starts in the object, in bytes. */
  readonly offset: number;
  readonly byteSize: number;
}

/** A tensor's place in a region: the parameters `shared_memory_region`, `_offset` and `_byte_size`. */
export interface RegionSlice {
  readonly region: string;
  readonly offset: number;
  readonly byteSize: number;
}

/** The output slices one request writes to, held from its decoding to its answer. */
export interface ReservedOutputs {
  /** Writes an output tensor into its slice, as raw bytes; refused if they do not fit. */
  write(output: Tensor): void;
  /** Done with the slices: a region unregistered meanwhile is released now. */
  release(): void;
}

export interface SharedMemoryLimits {
  /** How many regions may be registered at once (each holds a file descriptor). */
  readonly maxRegions: number;
  /** How many bytes the registered regions may span together. */
  readonly maxTotalBytes: number;
}

/**
 * The registered regions (port). Reads and writes check every range against the region; a region
 * unregistered while requests still write to it is released once they are done (Triton's rule).
 */
export abstract class SystemSharedMemory {
  /** Registers `byteSize` bytes at `offset` of the shared memory object `key` as region `name`. */
  abstract register(name: string, key: string, offset: number, byteSize: number): void;
  /** Unregisters one region, or every region without a name; an unknown name is no error (Triton's). */
  abstract unregister(name?: string): void;
  /** Every registered region, or the one named (REGION_NOT_FOUND if none). */
  abstract status(name?: string): SharedMemoryRegionStatus[];
  /** The bytes of an input's slice (a copy: the client may change the region at any time). */
  abstract read(slice: RegionSlice, input: string): Uint8Array;
  /** Checks the outputs' slices and holds their regions until the request is answered. */
  abstract reserve(outputs: ReadonlyMap<string, RegionSlice>): ReservedOutputs;
}

const NAME_MAX = 255;
const KEY_NAME = /^[A-Za-z0-9_.@+=-]+$/;

/** A region name: any text a client chose, 1 to 256 characters, without control characters. */
export function checkRegionName(name: string): string {
  // eslint-disable-next-line no-control-regex
  if (name.length === 0 || name.length > 256 || /[\u0000-\u001f\u007f]/.test(name)) {
    throw invalidRegion(`shared memory region name ${JSON.stringify(name.slice(0, 64))} is not valid: 1 to 256 characters, no control characters`);
  }
  return name;
}

/**
 * The file name, in the shared memory directory, of the object `key` names. A key is what
 * `shm_open` takes: an optional leading `/` and a plain name (letters, digits, `_ . @ + = -`,
 * without `..`). Anything that could leave the directory (another `/`, `..`) is refused.
 */
export function sharedMemoryFileName(region: string, key: string): string {
  const name = key.startsWith('/') ? key.slice(1) : key;
  if (name.length === 0 || name.length > NAME_MAX || !KEY_NAME.test(name) || name.includes('..') || name === '.') {
    throw invalidRegion(
      `shared memory region '${region}': key ${JSON.stringify(key.slice(0, 64))} is not a shared memory object name ` +
        `(an optional leading '/' and 1 to ${NAME_MAX} letters, digits or '_ . @ + = -', without '..' or another '/')`,
    );
  }
  return name;
}

/** Checks a registration's numbers and that it fits in an object of `objectSize` bytes. */
export function checkRegistration(region: string, offset: number, byteSize: number, objectSize: number, key: string): void {
  checkByteCount(region, 'offset', offset);
  checkByteCount(region, 'byte_size', byteSize);
  if (byteSize === 0) throw invalidRegion(`shared memory region '${region}': byte_size is 0, expected at least 1 byte`);
  if (offset + byteSize > objectSize) {
    throw invalidRegion(`shared memory region '${region}': offset ${offset} + byte_size ${byteSize} run past the ${objectSize} bytes of the shared memory object '${key}'`);
  }
}

/** Refuses a registration that would pass the limits. */
export function checkLimits(region: string, byteSize: number, registered: { readonly count: number; readonly bytes: number }, limits: SharedMemoryLimits): void {
  if (registered.count + 1 > limits.maxRegions) {
    throw new DomainError('SHARED_MEMORY.LIMIT_EXCEEDED', `cannot register shared memory region '${region}': ${registered.count} regions are registered, the limit (SHARED_MEMORY_MAX_REGIONS)`);
  }
  if (registered.bytes + byteSize > limits.maxTotalBytes) {
    throw new DomainError(
      'SHARED_MEMORY.LIMIT_EXCEEDED',
      `cannot register shared memory region '${region}': its ${byteSize} bytes and the ${registered.bytes} already registered pass the limit of ${limits.maxTotalBytes} bytes (SHARED_MEMORY_MAX_BYTES)`,
    );
  }
}

/** Checks that `slice` lies within a region of `regionSize` bytes; `tensor` names whose slice it is. */
export function checkSliceWithin(slice: RegionSlice, regionSize: number, tensor: string): void {
  checkByteCount(slice.region, `${tensor}: shared_memory_offset`, slice.offset);
  checkByteCount(slice.region, `${tensor}: shared_memory_byte_size`, slice.byteSize);
  if (slice.offset + slice.byteSize > regionSize) {
    throw invalidRegion(
      `${tensor}: shared memory region '${slice.region}' has ${regionSize} bytes; shared_memory_offset ${slice.offset} + shared_memory_byte_size ${slice.byteSize} run past its end`,
    );
  }
}

function checkByteCount(region: string, what: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw invalidRegion(`shared memory region '${region}': ${what} is ${value}, expected a non-negative integer (bytes)`);
}

/** Triton's answer while clients may not use shared memory (--allow-client-shm=false; here ALLOW_CLIENT_SHM). */
export function clientSharedMemoryDisabled(): DomainError {
  return new DomainError('SHARED_MEMORY.UNSUPPORTED', "client shared memory is disabled: start the server with ALLOW_CLIENT_SHM=true to enable it (Triton's --allow-client-shm)");
}

export function invalidRegion(message: string): DomainError {
  return new DomainError('SHARED_MEMORY.INVALID_REGION', message);
}
