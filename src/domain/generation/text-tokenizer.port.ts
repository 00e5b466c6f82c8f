/** One message of a chat, as chat templates take it. */
export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

/** Turns token ids back into text: what incremental detokenization runs on. */
export interface TokenDecoder {
  decode(tokenIds: readonly number[]): string;
}

/** A generative model's tokenizer and chat template (its `tokenizer.json` and `tokenizer_config.json`). */
export interface TextTokenizer extends TokenDecoder {
  /** Token ids of `text`, with the special tokens the tokenizer adds around a sequence (a BOS) when asked. */
  encode(text: string, addSpecialTokens: boolean): number[];
  /** Whether the model ships a chat template; without one a chat cannot be turned into a prompt. */
  readonly hasChatTemplate: boolean;
  /** The prompt the model's chat template makes of `messages`, opened for the assistant's answer. */
  applyChatTemplate(messages: readonly ChatMessage[]): string;
}

/**
 * Port to the tokenizers of the loaded generative versions, by version key: read from the version's
 * directory when it loads (a tokenizer that does not load fails the load), forgotten when it unloads.
 */
export abstract class TextTokenizers {
  abstract load(key: string, versionDir: string): Promise<TextTokenizer>;
  /** The tokenizer of a loaded version; undefined for a key never loaded or released. */
  abstract get(key: string): TextTokenizer | undefined;
  abstract release(key: string): void;
}
