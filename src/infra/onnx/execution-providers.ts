import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * The GPU providers whose shared library ships with the installed onnxruntime-node binary. The npm
 * package holds only the CPU provider unless its install script fetched the CUDA build; trying a
 * missing provider makes session creation fail with native error noise, so we look first.
 */
const PROVIDER_LIBRARY: Record<string, string> = {
  cuda: 'libonnxruntime_providers_cuda.so',
  tensorrt: 'libonnxruntime_providers_tensorrt.so',
};

let bindingDirectory: string | undefined;

function onnxRuntimeBindingDirectory(): string {
  if (!bindingDirectory) {
    const packageRoot = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
    bindingDirectory = join(packageRoot, 'bin', 'napi-v6', process.platform, process.arch);
  }
  return bindingDirectory;
}

export function isProviderInstalled(provider: string): boolean {
  if (provider === 'cpu') return true;
  const library = PROVIDER_LIBRARY[provider];
  return library !== undefined && existsSync(join(onnxRuntimeBindingDirectory(), library));
}
