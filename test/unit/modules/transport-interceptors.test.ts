import 'reflect-metadata';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { AppModule } from '../../../src/app.module.js';
import { AppConfig, loadAppConfig } from '../../../src/infra/config/app-config.js';
import { ServerTls } from '../../../src/infra/tls/server-tls.js';
import { GrpcAccessLogInterceptor } from '../../../src/modules/observability/tracing/grpc-access-log.interceptor.js';
import { TracingModule } from '../../../src/modules/observability/tracing/tracing.module.js';
import { TracingInterceptor } from '../../../src/modules/observability/tracing/tracing.interceptor.js';

type Constructor = abstract new (...args: never[]) => unknown;

/** Every controller of the app's modules, following their imports. */
function controllersOf(root: object): Constructor[] {
  const seen = new Set<object>();
  const controllers = new Set<Constructor>();
  const visit = (entry: unknown): void => {
    const module = (entry as { module?: object })?.module ?? entry;
    if (!module || seen.has(module as object)) return;
    seen.add(module as object);
    const dynamic = entry !== module ? (entry as { imports?: unknown[]; controllers?: Constructor[] }) : {};
    for (const controller of [...((Reflect.getMetadata('controllers', module) as Constructor[] | undefined) ?? []), ...(dynamic.controllers ?? [])]) controllers.add(controller);
    for (const imported of [...((Reflect.getMetadata('imports', module) as unknown[] | undefined) ?? []), ...(dynamic.imports ?? [])]) visit(imported);
  };
  visit(root);
  return [...controllers];
}

/** Whether a controller has a method answering gRPC (@GrpcMethod / @GrpcStreamCall set a pattern on it). */
function servesGrpc(controller: Constructor): boolean {
  const prototype = controller.prototype as Record<string, unknown>;
  return Object.getOwnPropertyNames(prototype).some((name) => name !== 'constructor' && Reflect.getMetadata('microservices:pattern', prototype[name] as object) !== undefined);
}

const interceptorsOf = (controller: Constructor): unknown[] => (Reflect.getMetadata('__interceptors__', controller) as unknown[] | undefined) ?? [];

describe('the interceptors each transport pays for', () => {
  const app = AppModule.with(loadAppConfig({}) as AppConfig, {} as ServerTls);
  const controllers = controllersOf(app);
  const grpc = controllers.filter(servesGrpc);

  it('gives every gRPC controller its access line, and no HTTP controller an interceptor', () => {
    assert.ok(grpc.length >= 6, `the app's gRPC controllers were found (${grpc.map((c) => c.name).join(', ')})`);
    for (const controller of grpc) assert.ok(interceptorsOf(controller).includes(GrpcAccessLogInterceptor), `${controller.name} writes gRPC access lines`);
    for (const controller of controllers.filter((c) => !servesGrpc(c))) assert.deepEqual(interceptorsOf(controller), [], `${controller.name} has no interceptor`);
  });

  it('installs the global request-span interceptor only when tracing is on', () => {
    const globalInterceptors = (module: { providers?: unknown[] }) =>
      (module.providers ?? []).filter((p): p is { provide: unknown; useClass: unknown } => (p as { provide?: unknown }).provide === APP_INTERCEPTOR).map((p) => p.useClass);
    const savedEnv = { ...process.env };
    for (const name of Object.keys(process.env)) if (name.startsWith('OTEL_')) delete process.env[name];
    try {
      assert.deepEqual(globalInterceptors(TracingModule.with()), []);
      assert.deepEqual(globalInterceptors(TracingModule.with(new InMemorySpanExporter())), [TracingInterceptor]);
    } finally {
      Object.assign(process.env, savedEnv);
    }
  });
});
