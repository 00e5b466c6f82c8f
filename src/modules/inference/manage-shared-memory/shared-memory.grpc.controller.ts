import { GrpcMethod } from '@nestjs/microservices';
import { INFERENCE_SERVICE } from '../../../infra/grpc/grpc-options.js';
import type { Int64 } from '../../../infra/grpc/inference-messages.js';
import { ManageSharedMemoryHandler } from './manage-shared-memory.handler.js';
import { GrpcController } from '../../observability/tracing/grpc-controller.decorator.js';

interface RegisterRequest {
  readonly name?: string;
  readonly key?: string;
  readonly offset?: Int64;
  readonly byte_size?: Int64;
}

/**
 * Triton's shared memory extension over gRPC: `SystemSharedMemoryStatus` / `Register` /
 * `Unregister` (an empty name means every region), and the `CudaSharedMemory*` calls, answered as
 * their HTTP twins are.
 */
@GrpcController()
export class SharedMemoryGrpcController {
  constructor(private readonly handler: ManageSharedMemoryHandler) {}

  @GrpcMethod(INFERENCE_SERVICE, 'SystemSharedMemoryStatus')
  systemStatus({ name }: { name?: string }) {
    const regions = this.handler.systemStatus(name || undefined);
    return { regions: Object.fromEntries(regions.map((region) => [region.name, { name: region.name, key: region.key, offset: region.offset, byte_size: region.byteSize }])) };
  }

  @GrpcMethod(INFERENCE_SERVICE, 'SystemSharedMemoryRegister')
  systemRegister({ name, key, offset, byte_size }: RegisterRequest) {
    // uint64 fields arrive as decimal strings; past 2^53 they fail the domain's byte-count check.
    this.handler.systemRegister(name ?? '', key ?? '', Number(offset ?? 0), Number(byte_size ?? 0));
    return {};
  }

  @GrpcMethod(INFERENCE_SERVICE, 'SystemSharedMemoryUnregister')
  systemUnregister({ name }: { name?: string }) {
    this.handler.systemUnregister(name || undefined);
    return {};
  }

  @GrpcMethod(INFERENCE_SERVICE, 'CudaSharedMemoryStatus')
  cudaStatus({ name }: { name?: string }) {
    this.handler.cudaStatus(name || undefined);
    return { regions: {} };
  }

  @GrpcMethod(INFERENCE_SERVICE, 'CudaSharedMemoryRegister')
  cudaRegister({ name }: { name?: string }) {
    this.handler.cudaRegister(name ?? '');
    return {};
  }

  @GrpcMethod(INFERENCE_SERVICE, 'CudaSharedMemoryUnregister')
  cudaUnregister() {
    this.handler.cudaUnregister();
    return {};
  }
}
