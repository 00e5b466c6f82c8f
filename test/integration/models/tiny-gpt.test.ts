// The generative demo model as the model builder writes it: Optimum's decoder-with-past layout,
// and tokenizer and configuration files that Hugging Face's own JavaScript tokenizer reads.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Tokenizer } from '@huggingface/tokenizers';
import * as ort from 'onnxruntime-node';
import { TINY_GPT, TINY_GPT_CONFIG, TINY_GPT_EOS_IDS, TINY_GPT_VOCAB_SIZE, tinyGptModel, writeTinyGptModel } from '../../../scripts/build-models.js';

const script = fileURLToPath(new URL('../../../scripts/build-models.js', import.meta.url));

describe('the tiny GPT (generative demo model)', () => {
  let dir: string;
  const read = async (file: string) => JSON.parse(await readFile(join(dir, 'tiny_gpt', file), 'utf8'));

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tiny-gpt-'));
    await writeTinyGptModel(join(dir, 'tiny_gpt'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('is laid out as Triton\'s repository with Hugging Face\'s files in the version directory', async () => {
    assert.deepEqual((await readdir(join(dir, 'tiny_gpt'))).sort(), ['1', 'config.json']);
    assert.deepEqual((await readdir(join(dir, 'tiny_gpt', '1'))).sort(), ['config.json', 'generation_config.json', 'model.onnx', 'tokenizer.json', 'tokenizer_config.json']);
    assert.deepEqual(await read('config.json'), TINY_GPT_CONFIG);
    const config = await read('1/config.json');
    assert.deepEqual(
      [config.model_type, config.n_layer, config.n_head, config.n_embd, config.vocab_size, config.n_positions, config.eos_token_id],
      ['gpt2', TINY_GPT.layers, TINY_GPT.heads, TINY_GPT.embedding, TINY_GPT_VOCAB_SIZE, TINY_GPT.positions, TINY_GPT_EOS_IDS[0]],
    );
    assert.deepEqual((await read('1/generation_config.json')).eos_token_id, [...TINY_GPT_EOS_IDS]);
  });

  it('has Optimum\'s inputs and outputs, with symbolic batch and sequence dimensions', async () => {
    const session = await ort.InferenceSession.create(join(dir, 'tiny_gpt', '1', 'model.onnx'));
    try {
      const kv = (prefix: string, length: string) =>
        Array.from({ length: TINY_GPT.layers }, (_, n) => ['key', 'value'].map((kind) => [`${prefix}.${n}.${kind}`, 'float32', ['batch_size', TINY_GPT.heads, length, TINY_GPT.embedding / TINY_GPT.heads]])).flat();
      const shapes = (metadata: readonly ort.InferenceSession.ValueMetadata[]) => metadata.map((m) => (m.isTensor ? [m.name, m.type, m.shape] : [m.name]));
      assert.deepEqual(shapes(session.inputMetadata), [
        ['input_ids', 'int64', ['batch_size', 'sequence_length']],
        ['attention_mask', 'int64', ['batch_size', 'total_sequence_length']],
        ['position_ids', 'int64', ['batch_size', 'sequence_length']],
        ...kv('past_key_values', 'past_sequence_length'),
      ]);
      assert.deepEqual(shapes(session.outputMetadata), [['logits', 'float32', ['batch_size', 'sequence_length', TINY_GPT_VOCAB_SIZE]], ...kv('present', 'total_sequence_length')]);
    } finally {
      await session.release();
    }
  });

  it('is rebuilt byte for byte (its weights are those of the committed weights file), and so is its untrained (seeded) variant', () => {
    assert.deepEqual(tinyGptModel(), tinyGptModel());
    assert.deepEqual(tinyGptModel('seeded'), tinyGptModel('seeded'));
    assert.notDeepEqual(tinyGptModel('seeded'), tinyGptModel());
  });

  it('its tokenizer loads with @huggingface/tokenizers: any text round-trips, special tokens are single ids', async () => {
    const tokenizer = new Tokenizer(await read('1/tokenizer.json'), await read('1/tokenizer_config.json'));
    const text = 'Hello, wörld! 你好 \n\t end';
    const { ids } = tokenizer.encode(text);
    assert.deepEqual(ids, [...Buffer.from(text, 'utf8')], 'one id per UTF-8 byte');
    assert.equal(tokenizer.decode(ids), text);
    assert.deepEqual(tokenizer.encode('<|im_start|>user\nhi<|im_end|><|endoftext|>').ids, [257, ...Buffer.from('user\nhi'), 258, 256]);
    assert.equal(tokenizer.decode([104, 105, 258], { skip_special_tokens: true }), 'hi');
    const config = await read('1/tokenizer_config.json');
    assert.match(config.chat_template, /<\|im_start\|>/);
    assert.equal(config.eos_token, '<|endoftext|>');
  });

  it('is added to the demo repository by `build-models --generative`', async () => {
    const repository = join(dir, 'demo');
    const { stdout } = await promisify(execFile)(process.execPath, [script, repository, '--generative']);
    assert.match(stdout, /Wrote the demo models classifier, multi_io, tiny_gpt to /);
    assert.deepEqual((await readdir(repository)).sort(), ['classifier', 'multi_io', 'tiny_gpt']);
    assert.deepEqual(await readFile(join(repository, 'tiny_gpt', '1', 'model.onnx')), Buffer.from(tinyGptModel()));
  });
});
