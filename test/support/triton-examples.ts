import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTritonExamplesRepository } from '../../scripts/build-models.js';

/** A fresh repository of the stand-ins of Triton's example models (build-models.ts), in a temporary directory. */
export async function tritonExamplesRepository(): Promise<string> {
  const repository = await mkdtemp(join(tmpdir(), 'onnx-serving-triton-examples-'));
  await writeTritonExamplesRepository(repository);
  return repository;
}

/** The values NVIDIA's `simple` examples send: INPUT0 = 0..15, INPUT1 all ones or all minus ones. */
export const INPUT0 = Array.from({ length: 16 }, (_, i) => i);
export const ONES = new Array<number>(16).fill(1);
export const MINUS_ONES = new Array<number>(16).fill(-1);

/** What `simple` answers: OUTPUT0 the element-wise sum, OUTPUT1 the difference. */
export const sum = (a: readonly number[], b: readonly number[]): number[] => a.map((x, i) => x + b[i]!);
export const difference = (a: readonly number[], b: readonly number[]): number[] => a.map((x, i) => x - b[i]!);
