import { Global, Injectable, Module } from '@nestjs/common';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TextTokenizers, type ChatMessage, type TextTokenizer } from '../../domain/generation/text-tokenizer.port.js';

/** What tokenizer_config.json may say about the chat template and the special tokens a template reads. */
interface TokenizerConfig {
  readonly chat_template?: string | readonly { readonly name: string; readonly template: string }[];
  readonly bos_token?: string | { readonly content: string };
  readonly eos_token?: string | { readonly content: string };
  readonly [field: string]: unknown;
}

const tokenText = (token: TokenizerConfig['bos_token']): string | undefined => (typeof token === 'string' ? token : token?.content);

/**
 * A tokenizer.json read with Tokenizers.js (`@huggingface/tokenizers`): Hugging Face's own
 * JavaScript implementation of the tokenizers pipeline (normalizers, pre-tokenizers, BPE,
 * WordPiece, Unigram, decoders), the one Transformers.js uses, without Transformers.js' model
 * runtime (which would bring a second onnxruntime and an image library). Chat templates are
 * rendered with `@huggingface/jinja`, Hugging Face's Jinja implementation for the templates of
 * tokenizer_config.json.
 */
class HuggingFaceTokenizer implements TextTokenizer {
  private readonly template?: Template;
  private readonly specialTokens: Record<string, string | undefined>;

  constructor(
    private readonly tokenizer: Tokenizer,
    config: TokenizerConfig,
  ) {
    const source = typeof config.chat_template === 'string' ? config.chat_template : config.chat_template?.find((t) => t.name === 'default')?.template;
    this.template = source === undefined ? undefined : new Template(source);
    this.specialTokens = { bos_token: tokenText(config.bos_token), eos_token: tokenText(config.eos_token) };
  }

  get hasChatTemplate(): boolean {
    return this.template !== undefined;
  }

  encode(text: string, addSpecialTokens: boolean): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(tokenIds: readonly number[]): string {
    if (tokenIds.length === 0) return '';
    return this.tokenizer.decode([...tokenIds], { skip_special_tokens: true });
  }

  applyChatTemplate(messages: readonly ChatMessage[]): string {
    if (!this.template) throw new Error('the model has no chat template (tokenizer_config.json chat_template)');
    return this.template.render({ messages, add_generation_prompt: true, ...this.specialTokens });
  }
}

/** The tokenizers of the loaded generative versions, read from `tokenizer.json` and `tokenizer_config.json` in the version directory. */
@Injectable()
export class HuggingFaceTokenizers extends TextTokenizers {
  private readonly loaded = new Map<string, TextTokenizer>();

  async load(key: string, versionDir: string): Promise<TextTokenizer> {
    const json = await readJson(versionDir, 'tokenizer.json', true);
    const config = ((await readJson(versionDir, 'tokenizer_config.json', false)) ?? {}) as TokenizerConfig;
    let tokenizer: TextTokenizer;
    try {
      tokenizer = new HuggingFaceTokenizer(new Tokenizer(json as object, config), config);
    } catch (error) {
      throw new Error(`the tokenizer files do not load: ${(error as Error).message}`);
    }
    this.loaded.set(key, tokenizer);
    return tokenizer;
  }

  get(key: string): TextTokenizer | undefined {
    return this.loaded.get(key);
  }

  release(key: string): void {
    this.loaded.delete(key);
  }
}

async function readJson(dir: string, file: string, required: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(join(dir, file), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !required) return undefined;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`a generative model needs ${file} in its version directory`);
    throw error;
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${file} is not valid JSON: ${(error as Error).message}`);
  }
}

/** Binds the tokenizer port for every module. */
@Global()
@Module({ providers: [{ provide: TextTokenizers, useClass: HuggingFaceTokenizers }], exports: [TextTokenizers] })
export class TokenizerModule {}
