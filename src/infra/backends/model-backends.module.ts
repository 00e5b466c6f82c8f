import { Module } from '@nestjs/common';
import { ModelBackends, type ModelBackend } from '../../domain/registry/model-backend.js';
import { ONNX_GENERATIVE_BACKEND } from '../onnx/generation/onnx-generative-backend.js';
import { ONNX_RUNTIME_BACKEND } from '../onnx/onnx-runtime-backend.js';
import { ModelBackendRegistry } from './model-backend-registry.js';

/**
 * The backends this server serves, the first serving the configurations that name none (Triton's
 * `platform`/`backend`). Registering one is one line here: its adapter's descriptor.
 */
const BACKENDS: readonly ModelBackend[] = [ONNX_RUNTIME_BACKEND, ONNX_GENERATIVE_BACKEND];

/** Binds the ModelBackends port to the registry of the backends above. */
@Module({
  providers: [{ provide: ModelBackends, useValue: new ModelBackendRegistry(BACKENDS) }],
  exports: [ModelBackends],
})
export class ModelBackendsModule {}
