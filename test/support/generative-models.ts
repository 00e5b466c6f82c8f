import { join } from 'node:path';
import { classifierModel, TINY_GPT_NAME, writeTinyGptModel } from '../../scripts/build-models.js';
import { makeRepository } from './test-server.js';

/** A repository with the generative tiny_gpt (and the classifier, an ONNX model that generates nothing). */
export async function generativeRepository(): Promise<string> {
  const root = await makeRepository([{ name: 'classifier', onnx: classifierModel() }]);
  await writeTinyGptModel(join(root, TINY_GPT_NAME));
  return root;
}

/** The data of each Server-Sent Event of a body, in order (`data: ...` lines). */
export function sseData(body: string): string[] {
  return body
    .split('\n\n')
    .filter((event) => event.startsWith('data: '))
    .map((event) => event.slice('data: '.length));
}

/** Reads an SSE response event by event, as they arrive; returns each event's data. */
export async function* sseEvents(response: Response): AsyncGenerator<string> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let pending = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    pending += value;
    let end: number;
    while ((end = pending.indexOf('\n\n')) >= 0) {
      const event = pending.slice(0, end);
      pending = pending.slice(end + 2);
      if (event.startsWith('data: ')) yield event.slice('data: '.length);
    }
  }
}
