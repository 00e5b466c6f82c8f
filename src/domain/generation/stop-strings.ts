/**
 * Finds the first stop string in streamed text. Text that could be the start of a stop string is
 * held back until the next piece says whether it is one, so a client never sees part of a stop
 * string, and one split across tokens is still found. The stop string itself is not part of the
 * output (OpenAI's and Triton's behaviour).
 */
export class StopStringMatcher {
  private pending = '';

  constructor(private readonly stops: readonly string[]) {}

  /** The text that may be sent now, and whether a stop string ended the sequence (then nothing after it is sent). */
  feed(piece: string): { readonly text: string; readonly stopped: boolean } {
    if (this.stops.length === 0) return { text: piece, stopped: false };
    this.pending += piece;
    let first = -1;
    for (const stop of this.stops) {
      const at = this.pending.indexOf(stop);
      if (at >= 0 && (first < 0 || at < first)) first = at;
    }
    if (first >= 0) {
      const text = this.pending.slice(0, first);
      this.pending = '';
      return { text, stopped: true };
    }
    const held = this.heldBack();
    const text = this.pending.slice(0, this.pending.length - held);
    this.pending = this.pending.slice(this.pending.length - held);
    return { text, stopped: false };
  }

  /** The text held back, when the sequence ends for another reason. */
  flush(): string {
    const text = this.pending;
    this.pending = '';
    return text;
  }

  /** The length of the longest end of the pending text that begins some stop string. */
  private heldBack(): number {
    let longest = 0;
    for (const stop of this.stops) {
      for (let length = Math.min(stop.length - 1, this.pending.length); length > longest; length--) {
        if (this.pending.endsWith(stop.slice(0, length))) {
          longest = length;
          break;
        }
      }
    }
    return longest;
  }
}
