import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { JOBS_PACKAGE, JOBS_PROTO_FILE, JOBS_SERVICE, PROTO_LOADER_OPTIONS } from '../../src/infra/grpc/grpc-options.js';
import { requestJson } from './test-server.js';

/** One row for the demo classifier (input [1, 4] FP32). */
export const CLASSIFIER_ROW = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [6.7, 3.0, 5.2, 2.3] }] };

/** POST .../jobs with an optional Idempotency-Key. */
export function submitJob(url: string, model: string, body: unknown, idempotencyKey?: string): Promise<{ status: number; body: any; headers: Headers }> {
  return requestJson('POST', `${url}/v2/models/${model}/jobs`, { body, headers: idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey } });
}

/**
 * Polls GET /v2/jobs/{id} (as a client does: the job says nothing on its own) until `done` holds,
 * every 25 ms, at most ~60 s; answers the last job seen.
 */
export async function pollJob(url: string, id: string, done: (job: any) => boolean = (job) => ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(job.state)): Promise<any> {
  let last: any;
  for (let attempt = 0; attempt < 2400; attempt++) {
    const answer = await requestJson('GET', `${url}/v2/jobs/${id}`).catch(() => undefined);
    if (answer?.status === 200) {
      last = answer.body;
      if (done(last)) return last;
    }
    await sleep(25);
  }
  throw new Error(`job ${id} never reached the awaited state; last seen: ${JSON.stringify(last)}`);
}

/** A client of onnx_serving.InferenceJobService (src/infra/grpc/proto/inference_jobs.proto). */
export class JobsGrpcClient {
  private readonly client: grpc.Client & Record<string, Function>;

  constructor(address: string) {
    const definition = protoLoader.loadSync(JOBS_PROTO_FILE, PROTO_LOADER_OPTIONS);
    const service = (grpc.loadPackageDefinition(definition)[JOBS_PACKAGE] as grpc.GrpcObject)[JOBS_SERVICE] as grpc.ServiceClientConstructor;
    this.client = new service(address, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Function>;
  }

  call(method: 'SubmitJob' | 'GetJob' | 'CancelJob', request: object, metadata: Record<string, string> = {}): Promise<any> {
    const md = new grpc.Metadata();
    for (const [key, value] of Object.entries(metadata)) md.set(key, value);
    return new Promise((resolve, reject) => this.client[method]!.call(this.client, request, md, (error: grpc.ServiceError | null, answer: unknown) => (error ? reject(error) : resolve(answer))));
  }

  close(): void {
    this.client.close();
  }
}
