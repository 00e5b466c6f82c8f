import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/** The model file of a generative version directory, beside its tokenizer and configuration files. */
export const GENERATIVE_MODEL_FILE = 'model.onnx';

/** What the engine takes from a version directory's Hugging Face files (config.json, generation_config.json). */
export interface GenerativeModelFacts {
  readonly vocabSize?: number;
  readonly maxPositions: number;
  readonly eosTokenIds: readonly number[];
}

const tokenId = z.number().int().min(0);
const tokenIds = z.union([tokenId, z.array(tokenId)]).nullish();
const count = z.number().int().positive().optional();

/**
 * The fields read, under the names the model families use (GPT-2: n_positions/n_ctx; Llama,
 * Mistral, Qwen, Phi: max_position_embeddings); any other field is left alone, as transformers does.
 */
const modelConfig = z.looseObject({
  vocab_size: count,
  max_position_embeddings: count,
  n_positions: count,
  n_ctx: count,
  eos_token_id: tokenIds,
});
const generationConfig = z.looseObject({ eos_token_id: tokenIds });

/** Reads a JSON file of the version directory; undefined when it is absent. */
async function readJson<T>(versionDir: string, file: string, schema: z.ZodType<T>, required: boolean): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(join(versionDir, file), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !required) return undefined;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`a generative model needs ${file} beside ${GENERATIVE_MODEL_FILE} (Hugging Face's model configuration)`);
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${file}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

const asList = (ids: number | number[] | null | undefined): number[] => (ids === undefined || ids === null ? [] : Array.isArray(ids) ? ids : [ids]);

/**
 * Reads the context length, vocabulary size and end-of-sequence tokens: `config.json` is required
 * (its context length bounds every sequence); the end tokens are those of `generation_config.json`
 * (what transformers' generate stops on) and of `config.json`, together.
 */
export async function readGenerativeModelFacts(versionDir: string): Promise<GenerativeModelFacts> {
  const config = (await readJson(versionDir, 'config.json', modelConfig, true))!;
  const generation = await readJson(versionDir, 'generation_config.json', generationConfig, false);
  const maxPositions = config.max_position_embeddings ?? config.n_positions ?? config.n_ctx;
  if (maxPositions === undefined) throw new Error('config.json names no context length (max_position_embeddings, n_positions or n_ctx)');
  const eosTokenIds = [...new Set([...asList(generation?.eos_token_id), ...asList(config.eos_token_id)])];
  return { vocabSize: config.vocab_size, maxPositions, eosTokenIds };
}
