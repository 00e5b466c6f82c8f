import { setTimeout as sleep } from 'node:timers/promises';
import type { InMemorySpanExporter, ReadableSpan } from '@opentelemetry/sdk-trace';

/** The spans `exporter` has received once `done` holds of them (polled with a bound, not a fixed sleep). */
export async function spansUntil(exporter: InMemorySpanExporter, done: (spans: ReadableSpan[]) => boolean): Promise<ReadableSpan[]> {
  for (let attempt = 0; attempt < 400; attempt++) {
    const spans = exporter.getFinishedSpans();
    if (done(spans)) return spans;
    await sleep(5);
  }
  throw new Error(`spans never complete: ${exporter.getFinishedSpans().map((s) => s.name).join(', ')}`);
}
