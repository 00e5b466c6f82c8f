import { ModelBackendRegistry } from '../../src/infra/backends/model-backend-registry.js';
import { ONNX_RUNTIME_BACKEND } from '../../src/infra/onnx/onnx-runtime-backend.js';

export { ONNX_RUNTIME_BACKEND };

/** The backends the server registers (ONNX Runtime), for what a test builds without the app. */
export const SERVED_BACKENDS = new ModelBackendRegistry([ONNX_RUNTIME_BACKEND]);
