import { setTimeout as sleep } from 'node:timers/promises';
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
