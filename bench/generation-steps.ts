/**
 * `node .build/bench/generation-steps.js`: the generation engine alone (no server, no scheduler).
 * The tiny GPT in its instance process (1 intra-op thread): decode steps of 1, 8 and 32 sequences
 * that each hold a prompt of 64 positions, measured as the median wall time of a step seen by the
 * caller (IPC included) and as the process's own compute time; then output tokens/s of each batch
 * size; the server bench's workload (128 requests of 64 + 64 tokens) decoded one at a time and by
 * 32 slots (the engine's own ratio); and a prefill of 256 tokens. Prints one line per case.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyGptVersion } from '../scripts/build-models.js';
import type { SequenceStepInput } from '../src/domain/generation/generation-engine.port.js';
import { GREEDY } from '../src/domain/generation/sampling.js';
import { OnnxGenerationEngine } from '../src/infra/onnx/generation/onnx-generation-engine.js';
import { ModelVersionId, RuntimeKey } from '../src/domain/shared/model-version-id.js';

const KEY = RuntimeKey.of(ModelVersionId.of('tiny_gpt', 1));
const PROMPT = 64;
const STEPS = 60;
const NEW_TOKENS = 64;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

const dir = await mkdtemp(join(tmpdir(), 'generation-bench-'));
await writeTinyGptVersion(join(dir, '1'));
const engine = new OnnxGenerationEngine();
await engine.load(KEY, join(dir, '1'), { instanceCount: 1, executionProviders: ['cpu'], intraOpThreads: 1, allowSpinning: false });
try {
  for (const batch of [1, 8, 32]) {
    const ids = Array.from({ length: batch }, (_, i) => `b${batch}-${i}`);
    const prompt = Array.from({ length: PROMPT }, (_, i) => (i * 7) % 256);
    let last = new Map<string, number>();
    const { outputs } = await engine.step(KEY, ids.map((sequenceId) => ({ sequenceId, tokens: prompt, sample: true, sampling: GREEDY })));
    last = new Map(outputs.map((o) => [o.sequenceId, o.token!]));
    const walls: number[] = [];
    const computes: number[] = [];
    for (let step = 0; step < STEPS; step++) {
      const inputs: SequenceStepInput[] = ids.map((sequenceId) => ({ sequenceId, tokens: [last.get(sequenceId)!], sample: true, sampling: GREEDY }));
      const started = performance.now();
      const result = await engine.step(KEY, inputs);
      walls.push(performance.now() - started);
      computes.push(result.computeMicros / 1000);
      last = new Map(result.outputs.map((o) => [o.sequenceId, o.token!]));
    }
    engine.release(KEY, ids);
    const wall = median(walls);
    console.log(`decode batch ${String(batch).padStart(2)}: step ${wall.toFixed(2)} ms (compute ${median(computes).toFixed(2)} ms), ${Math.round((batch * 1000) / wall)} output tokens/s`);
  }
  // The server bench's workload on the engine alone: 128 requests (a prompt of PROMPT tokens, then
  // NEW_TOKENS generated, greedy), decoded one at a time, then by 32 slots that each take the next
  // request when one ends (prompts fed whole at the step they join, beside the decoding ones).
  const requests = Array.from({ length: 128 }, (_, r) => Array.from({ length: PROMPT }, (_, i) => (i * 7 + r) % 256));
  const continuous = async (slots: number): Promise<number> => {
    let next = 0;
    let generated = 0;
    const active = new Map<string, { last?: number; fed: boolean; out: number }>();
    const started = performance.now();
    while (next < requests.length || active.size > 0) {
      while (active.size < slots && next < requests.length) active.set(`c${slots}-${next++}`, { fed: false, out: 0 });
      const ids = [...active.keys()];
      const inputs = ids.map((sequenceId) => {
        const sequence = active.get(sequenceId)!;
        return { sequenceId, tokens: sequence.fed ? [sequence.last!] : requests[Number(sequenceId.split('-')[1])]!, sample: true, sampling: GREEDY };
      });
      const { outputs } = await engine.step(KEY, inputs);
      const done: string[] = [];
      outputs.forEach(({ sequenceId, token }) => {
        const sequence = active.get(sequenceId)!;
        sequence.fed = true;
        sequence.last = token;
        generated++;
        if (++sequence.out === NEW_TOKENS) done.push(sequenceId);
      });
      for (const id of done) active.delete(id);
      engine.release(KEY, done);
    }
    return (generated * 1000) / (performance.now() - started);
  };
  await continuous(32);
  const alone = await continuous(1);
  const batched = await continuous(32);
  console.log(`continuous, 128 requests of ${PROMPT} + ${NEW_TOKENS} tokens: one at a time ${Math.round(alone)} output tokens/s, 32 slots ${Math.round(batched)} (${(batched / alone).toFixed(1)}x)`);

  const prefills: number[] = [];
  for (let i = 0; i < 10; i++) {
    const started = performance.now();
    await engine.step(KEY, [{ sequenceId: `p${i}`, tokens: Array.from({ length: 256 }, (_, k) => k % 256), sample: true, sampling: GREEDY }]);
    prefills.push(performance.now() - started);
    engine.release(KEY, [`p${i}`]);
  }
  console.log(`prefill 256 tokens: ${median(prefills).toFixed(2)} ms`);
} finally {
  await engine.unload(KEY);
  await rm(dir, { recursive: true, force: true });
}
