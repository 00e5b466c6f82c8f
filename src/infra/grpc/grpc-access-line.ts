/** What an access line reads of an inference answer. */
export interface InferAnswer {
  readonly model_name?: string;
  readonly model_version?: string;
  readonly parameters?: Record<string, { int64_param?: string | number }>;
}

/**
 * One gRPC call's access line (the main thread's interceptor and an ingress thread write the same):
 * the method, its status code, duration, and for inference the model, version, queue and compute
 * time (and trace ids when tracing is on). Levels as for HTTP: failures of the server at error,
 * refusals and client errors at warn.
 */
export function grpcAccessLine(method: string | undefined, code: number, started: number, answer: InferAnswer | undefined, traced: object, error?: unknown): { level: 'info' | 'warn' | 'error'; line: object } {
  const line = {
    rpc: method,
    code,
    duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
    ...(answer?.model_name && { model: answer.model_name, version: answer.model_version }),
    ...(answer?.parameters?.queue_time_us && {
      queue_time_us: Number(answer.parameters.queue_time_us.int64_param),
      compute_time_us: Number(answer.parameters.compute_time_us?.int64_param),
    }),
    ...traced,
    msg: error === undefined ? 'rpc completed' : `rpc failed: ${(error as Error).message}`,
  };
  // INTERNAL/UNKNOWN: the server failed; the others are refusals or the client's errors.
  return { level: code === 13 || code === 2 ? 'error' : code !== 0 ? 'warn' : 'info', line };
}
