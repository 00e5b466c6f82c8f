import { Injectable } from '@nestjs/common';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { clientSharedMemoryDisabled, SystemSharedMemory, type SharedMemoryRegionStatus } from '../../../domain/shared-memory/system-shared-memory.js';
import { AppConfig } from '../../../infra/config/app-config.js';

/**
 * Triton's shared memory extension: status, register and unregister of system shared memory
 * regions (behind ALLOW_CLIENT_SHM, Triton's --allow-client-shm), and the CUDA shared memory calls,
 * which this server cannot serve: onnxruntime-node takes no CUDA IPC handle, so registering one is
 * UNSUPPORTED (501 / UNIMPLEMENTED), while status and unregister truthfully report no region (Triton's
 * examples unregister every CUDA region before they start).
 */
@Injectable()
export class ManageSharedMemoryHandler {
  constructor(
    private readonly sharedMemory: SystemSharedMemory,
    private readonly config: AppConfig,
  ) {}

  systemStatus(name?: string): SharedMemoryRegionStatus[] {
    return this.sharedMemory.status(name);
  }

  systemRegister(name: string, key: string, offset: number, byteSize: number): void {
    this.sharedMemory.register(name, key, offset, byteSize);
  }

  systemUnregister(name?: string): void {
    this.sharedMemory.unregister(name);
  }

  cudaStatus(name?: string): never[] {
    if (name !== undefined) throw new DomainError('SHARED_MEMORY.REGION_NOT_FOUND', `no CUDA shared memory region '${name}' is registered (this server has no CUDA shared memory)`);
    return [];
  }

  cudaRegister(name: string): never {
    this.assertClientsAllowed();
    throw new DomainError(
      'SHARED_MEMORY.UNSUPPORTED',
      `cannot register CUDA shared memory region '${name}': this server does not support CUDA shared memory (onnxruntime-node takes no CUDA IPC handle); use system shared memory`,
    );
  }

  cudaUnregister(): void {
    this.assertClientsAllowed();
  }

  /** Triton checks --allow-client-shm first, for both kinds of shared memory. */
  private assertClientsAllowed(): void {
    if (!this.config.ALLOW_CLIENT_SHM) throw clientSharedMemoryDisabled();
  }
}
