import type { TokenDecoder } from './text-tokenizer.port.js';

const REPLACEMENT_CHARACTER = '\uFFFD';

/**
 * Streams the text of a sequence token by token. A token is not always whole characters (a
 * byte-level BPE splits a multi-byte character over tokens), and a token's text can depend on the
 * one before it (a leading space a decoder strips, merged pieces), so each new token's text is the
 * difference between decoding a small window with and without it; text that still ends in an
 * incomplete character (U+FFFD) waits for the next token. This is the prefix/read offset scheme of
 * vLLM and TGI: each step decodes a few tokens, never the whole sequence.
 */
export class IncrementalDetokenizer {
  private readonly ids: number[] = [];
  /** Where the decoded window starts: a token or more before the unread ones, for context. */
  private prefixOffset = 0;
  /** The tokens before this one have been turned into text. */
  private readOffset = 0;

  constructor(private readonly decoder: TokenDecoder) {}

  /** The text `tokenId` completes; '' while a character is still incomplete. */
  push(tokenId: number): string {
    this.ids.push(tokenId);
    const before = this.decoder.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const after = this.decoder.decode(this.ids.slice(this.prefixOffset));
    if (after.length <= before.length || after.endsWith(REPLACEMENT_CHARACTER)) return '';
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    return after.slice(before.length);
  }

  /** What the tokens not yet turned into text decode to, when the sequence ends (an incomplete character as U+FFFD). */
  flush(): string {
    if (this.readOffset === this.ids.length) return '';
    const before = this.decoder.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const after = this.decoder.decode(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return after.startsWith(before) ? after.slice(before.length) : after;
  }
}
