import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TINY_GPT_EOS_IDS, writeTinyGptVersion } from '../../../scripts/build-models.js';
import { IncrementalDetokenizer } from '../../../src/domain/generation/incremental-detokenizer.js';
import { HuggingFaceTokenizers } from '../../../src/infra/tokenizer/hugging-face-tokenizers.js';

describe("HuggingFaceTokenizers on tiny_gpt's tokenizer files", () => {
  let dir: string;
  const tokenizers = new HuggingFaceTokenizers();
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tokenizer-'));
    await writeTinyGptVersion(dir);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('encodes and decodes text, multi-byte characters included, and streams it whole token by token', async () => {
    const tokenizer = await tokenizers.load('t/1', dir);
    const text = 'héllo, wörld 😀 — 漢字';
    const ids = tokenizer.encode(text, false);
    assert.ok(ids.length > [...text].length, 'byte-level: multi-byte characters span several tokens');
    assert.equal(tokenizer.decode(ids), text);
    const detokenizer = new IncrementalDetokenizer(tokenizer);
    const pieces = ids.map((id) => detokenizer.push(id));
    assert.equal(pieces.join('') + detokenizer.flush(), text);
    assert.ok(pieces.every((piece) => !piece.includes('\uFFFD')), 'no piece ends inside a character');
    assert.equal(tokenizer.decode([]), '');
  });

  it('renders the chat template with the special tokens, and drops special tokens when decoding', async () => {
    const tokenizer = await tokenizers.load('t/2', dir);
    assert.equal(tokenizer.hasChatTemplate, true);
    const prompt = tokenizer.applyChatTemplate([{ role: 'user', content: 'Hi' }]);
    assert.equal(prompt, '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    const ids = tokenizer.encode(prompt, false);
    assert.ok(ids.includes(TINY_GPT_EOS_IDS[1]), '<|im_end|> is one special token');
    assert.equal(tokenizer.decode([...tokenizer.encode('ok', false), TINY_GPT_EOS_IDS[0]]), 'ok');
  });

  it('keeps each version apart and forgets a released one', async () => {
    assert.ok(tokenizers.get('t/1'));
    tokenizers.release('t/1');
    assert.equal(tokenizers.get('t/1'), undefined);
  });

  it('fails to load without tokenizer.json, or with a bad one, saying which file', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'tokenizer-'));
    await assert.rejects(tokenizers.load('x', empty), /needs tokenizer\.json/);
    await writeFile(join(empty, 'tokenizer.json'), '{not json');
    await assert.rejects(tokenizers.load('x', empty), /tokenizer\.json is not valid JSON/);
    await rm(empty, { recursive: true, force: true });
  });
});
