import { setTimeout as sleep } from 'node:timers/promises';
import { getJson } from './test-server.js';

/**
 * Waits for what the server shows in GET /health, rather than for time to pass: the engine's
 * running and waiting calls of a model version, and its scheduler's queue.
 */

/** Waits until the engine holds `busy` running and `queued` waiting calls of the model's version 1. */
export async function engineShows(url: string, model: string, busy: number, queued: number): Promise<void> {
  let pool: { key: string; busy: number; queued: number } | undefined;
  for (let attempt = 0; attempt < 1000; attempt++) {
    const { body } = await getJson(`${url}/health`);
    pool = body.details.workers.pools.find((p: { key: string }) => p.key === `${model}/1`);
    if (pool?.busy === busy && pool.queued === queued) return;
    await sleep(5);
  }
  throw new Error(`${model}: the engine never showed ${busy} busy and ${queued} queued; last ${JSON.stringify(pool)}`);
}

/** Waits until the scheduler of the model's version 1 holds `queued` waiting requests and `running` batches. */
export async function schedulerShows(url: string, model: string, queued: number, running = 1): Promise<void> {
  let scheduler: { key: string; queued: number; runningBatches: number } | undefined;
  for (let attempt = 0; attempt < 1000; attempt++) {
    const { body } = await getJson(`${url}/health`);
    scheduler = body.details.queues.schedulers.find((s: { key: string }) => s.key === `${model}/1`);
    if (scheduler?.queued === queued && scheduler.runningBatches === running) return;
    await sleep(5);
  }
  throw new Error(`${model}: the scheduler never showed ${queued} queued and ${running} running batches; last ${JSON.stringify(scheduler)}`);
}
