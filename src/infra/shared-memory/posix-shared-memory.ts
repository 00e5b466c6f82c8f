import { closeSync, constants, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { DomainError } from '../../domain/shared/domain-error.js';
import { encodeRawTensor } from '../transport/raw-tensor.codec.js';
import {
  checkLimits,
  checkRegionName,
  checkRegistration,
  checkSliceWithin,
  clientSharedMemoryDisabled,
  invalidRegion,
  sharedMemoryFileName,
  SystemSharedMemory,
  type RegionSlice,
  type ReservedOutputs,
  type SharedMemoryLimits,
  type SharedMemoryRegionStatus,
} from '../../domain/shared-memory/system-shared-memory.js';

/** Where POSIX shared memory objects live on Linux: `shm_open("/name")` is the file `/dev/shm/name`. */
const SHARED_MEMORY_DIRECTORY = '/dev/shm';

export interface PosixSharedMemoryOptions {
  /** Triton's --allow-client-shm: whether clients may register and unregister regions at all. */
  readonly allowClients: boolean;
  readonly limits: SharedMemoryLimits;
  /** The directory of the shared memory objects; tests only (the server always uses /dev/shm). */
  readonly directory?: string;
}

interface Region extends SharedMemoryRegionStatus {
  readonly fd: number;
  /** Requests holding the region for their outputs. */
  users: number;
  unregistered: boolean;
}

/**
 * System shared memory on a POSIX host, read with `pread` and written with `pwrite` on a descriptor
 * held per region, rather than mapped: Node has no mmap, and a native mmap addon would need a
 * compiler at install time. Copying is no loss: an input must be copied anyway (the runtime keeps
 * the request's buffers while the client may rewrite its region), and a read goes straight into
 * the tensor's buffer, one memory copy from tmpfs, as mmap plus a copy would be. It is also safer:
 * a client that truncates its object makes a mapping fault (SIGBUS kills the process), whereas a
 * short read is an error answered with a 400. Reads and writes are synchronous: on tmpfs they are
 * memory copies with no device to wait for, and an input's size is bounded by its region.
 *
 * The object is opened inside SHARED_MEMORY_DIRECTORY only, by a plain name (no separators, no
 * `..`), without following a symbolic link (O_NOFOLLOW), and must be a regular file: a key cannot
 * make the server open anything else. Descriptors are closed on unregister (or, for a region
 * requests still write to, when the last of them is answered) and at shutdown.
 */
export class PosixSharedMemory extends SystemSharedMemory {
  private readonly regions = new Map<string, Region>();
  /** Unregistered regions that requests still hold; closed when the last one lets go. */
  private readonly draining = new Set<Region>();
  private readonly directory: string;

  constructor(private readonly options: PosixSharedMemoryOptions) {
    super();
    this.directory = options.directory ?? SHARED_MEMORY_DIRECTORY;
  }

  register(name: string, key: string, offset: number, byteSize: number): void {
    this.assertClientsAllowed();
    checkRegionName(name);
    if (this.regions.has(name)) throw new DomainError('SHARED_MEMORY.REGION_EXISTS', `shared memory region '${name}' is already registered`);
    const file = sharedMemoryFileName(name, key);
    checkRegistration(name, offset, byteSize, Number.MAX_SAFE_INTEGER, key);
    const held = [...this.regions.values(), ...this.draining];
    checkLimits(name, byteSize, { count: held.length, bytes: held.reduce((sum, region) => sum + region.byteSize, 0) }, this.options.limits);
    let fd: number;
    try {
      // O_NONBLOCK: opening a FIFO planted under the key must not hang; regular files ignore it.
      fd = openSync(join(this.directory, file), constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (error) {
      throw invalidRegion(`shared memory region '${name}': cannot open the shared memory object '${key}': ${openFailure(error)}`);
    }
    try {
      const stats = fstatSync(fd);
      if (!stats.isFile()) throw invalidRegion(`shared memory region '${name}': '${key}' is not a shared memory object (not a regular file)`);
      checkRegistration(name, offset, byteSize, stats.size, key);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    this.regions.set(name, { name, key, offset, byteSize, fd, users: 0, unregistered: false });
  }

  unregister(name?: string): void {
    this.assertClientsAllowed();
    const names = name === undefined ? [...this.regions.keys()] : [name];
    for (const each of names) {
      const region = this.regions.get(each);
      if (!region) continue;
      this.regions.delete(each);
      region.unregistered = true;
      if (region.users === 0) closeSync(region.fd);
      else this.draining.add(region);
    }
  }

  status(name?: string): SharedMemoryRegionStatus[] {
    const regions = name === undefined ? [...this.regions.values()] : [this.regions.get(name)];
    return regions.map((region) => {
      if (!region) throw new DomainError('SHARED_MEMORY.REGION_NOT_FOUND', `no system shared memory region '${name}' is registered`);
      return { name: region.name, key: region.key, offset: region.offset, byteSize: region.byteSize };
    });
  }

  read(slice: RegionSlice, input: string): Uint8Array {
    const tensor = `input '${input}'`;
    const region = this.lookUp(slice, tensor);
    // A buffer of its own (not Node's shared pool): aligned for any typed array over it.
    const bytes = new Uint8Array(new ArrayBuffer(slice.byteSize));
    let done = 0;
    while (done < bytes.length) {
      const read = readSync(region.fd, bytes, done, bytes.length - done, region.offset + slice.offset + done);
      if (read === 0) throw shrunk(region, tensor);
      done += read;
    }
    return bytes;
  }

  reserve(outputs: ReadonlyMap<string, RegionSlice>): ReservedOutputs {
    const held = new Map<string, { slice: RegionSlice; region: Region }>();
    for (const [output, slice] of outputs) held.set(output, { slice, region: this.lookUp(slice, `output '${output}'`) });
    const regions = new Set([...held.values()].map(({ region }) => region));
    for (const region of regions) region.users++;
    let released = false;
    return {
      write: (tensor) => {
        const output = tensor.name;
        const entry = held.get(output);
        if (!entry || released) throw new Error(`output '${output}' holds no shared memory slice`);
        const { slice, region } = entry;
        const bytes = encodeRawTensor(tensor);
        if (bytes.length > slice.byteSize) {
          throw invalidRegion(
            `output '${output}' has ${bytes.length} bytes, more than the ${slice.byteSize} bytes its shared_memory_byte_size gives it in shared memory region '${slice.region}'`,
          );
        }
        const start = region.offset + slice.offset;
        if (fstatSync(region.fd).size < start + bytes.length) throw shrunk(region, `output '${output}'`);
        let done = 0;
        while (done < bytes.length) done += writeSync(region.fd, bytes, done, bytes.length - done, start + done);
      },
      release: () => {
        if (released) return;
        released = true;
        for (const region of regions) {
          region.users--;
          if (region.unregistered && region.users === 0) {
            this.draining.delete(region);
            closeSync(region.fd);
          }
        }
      },
    };
  }

  /** Closes every descriptor (Nest calls it at shutdown): nothing may use a region after this. */
  onApplicationShutdown(): void {
    for (const region of [...this.regions.values(), ...this.draining]) closeSync(region.fd);
    this.regions.clear();
    this.draining.clear();
  }

  private lookUp(slice: RegionSlice, tensor: string): Region {
    const region = this.regions.get(slice.region);
    if (!region) {
      const hint = this.options.allowClients ? '' : ' (client shared memory is disabled: ALLOW_CLIENT_SHM)';
      throw invalidRegion(`${tensor}: no system shared memory region '${slice.region}' is registered${hint}`);
    }
    checkSliceWithin(slice, region.byteSize, tensor);
    return region;
  }

  private assertClientsAllowed(): void {
    if (!this.options.allowClients) throw clientSharedMemoryDisabled();
  }
}

function shrunk(region: Region, tensor: string): DomainError {
  return invalidRegion(`${tensor}: the shared memory object '${region.key}' of region '${region.name}' has shrunk below the region since it was registered`);
}

function openFailure(error: unknown): string {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'it does not exist';
    case 'ELOOP':
      return 'it is a symbolic link';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    default:
      return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}
