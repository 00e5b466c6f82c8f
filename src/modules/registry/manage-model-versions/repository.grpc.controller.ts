import { UseGuards } from '@nestjs/common';
import { GrpcMethod } from '@nestjs/microservices';
import { DomainError } from '../../../domain/shared/domain-error.js';
import { INFERENCE_SERVICE } from '../../../infra/grpc/grpc-options.js';
import type { ModelRepositoryParameterMessage, RepositoryModelRequestMessage } from '../../../infra/grpc/inference-messages.js';
import { AdminAuthGuard } from './admin-auth.guard.js';
import { TritonRepository } from './triton-repository.js';
import { GrpcController } from '../../observability/tracing/grpc-controller.decorator.js';

/** Triton's model-repository extension over gRPC, behind the admin token (`authorization: Bearer ...` metadata). */
@GrpcController()
@UseGuards(AdminAuthGuard)
export class RepositoryGrpcController {
  constructor(private readonly repository: TritonRepository) {}

  @GrpcMethod(INFERENCE_SERVICE, 'RepositoryIndex')
  async repositoryIndex({ ready }: { ready?: boolean }) {
    const entries = await this.repository.index(ready ?? false);
    return { models: entries.map((entry) => ({ name: entry.name, version: entry.version ?? '', state: entry.state ?? '', reason: entry.reason ?? '' })) };
  }

  @GrpcMethod(INFERENCE_SERVICE, 'RepositoryModelLoad')
  async repositoryModelLoad({ model_name, parameters }: RepositoryModelRequestMessage) {
    await this.repository.load(model_name ?? '', valuesOf(parameters));
    return {};
  }

  @GrpcMethod(INFERENCE_SERVICE, 'RepositoryModelUnload')
  async repositoryModelUnload({ model_name, parameters }: RepositoryModelRequestMessage) {
    valuesOf(parameters);
    await this.repository.unload(model_name ?? '');
    return {};
  }
}

function valuesOf(parameters: Record<string, ModelRepositoryParameterMessage> | undefined): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const [key, parameter] of Object.entries(parameters ?? {})) {
    const choice = parameter.parameter_choice;
    if (choice === undefined) throw new DomainError('ADMIN.INVALID_REQUEST', `parameters['${key}'] has no value`);
    // 64-bit integers arrive as decimal strings (PROTO_LOADER_OPTIONS): a number is what the client sent.
    values[key] = choice === 'int64_param' ? Number(parameter.int64_param) : parameter[choice];
  }
  return values;
}
