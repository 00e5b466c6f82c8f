import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TINY_GPT_NAME } from '../../scripts/build-models.js';
import { generativeRepository } from '../support/generative-models.js';
import { InferenceClient, outputOf, Status, type ModelInferRequest } from '../support/grpc-client.js';
import { postJson, startTestServer, type TestServer } from '../support/test-server.js';

const request = (id: string, prompt: string, maxTokens: number): ModelInferRequest => ({
  id,
  model_name: TINY_GPT_NAME,
  inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from(prompt)] } }],
  parameters: { max_tokens: { int64_param: maxTokens }, temperature: { double_param: 0 } },
});

describe('gRPC on a generative model (tiny_gpt)', () => {
  let server: TestServer;
  let client: InferenceClient;
  before(async () => {
    server = await startTestServer(await generativeRepository());
    client = new InferenceClient(server.server.grpcAddress);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  it('ModelInfer answers the whole text as the BYTES output text_output', async () => {
    const response = await client.infer(request('one', 'Hello', 6));
    const triton = await postJson(`${server.url}/v2/models/${TINY_GPT_NAME}/generate`, { text_input: 'Hello', parameters: { max_tokens: 6, temperature: 0 } });
    assert.equal(response.id, 'one');
    assert.deepEqual(outputOf(response, 'text_output').values, [triton.body.text_output]);
  });

  it('ModelStreamInfer answers each token on its own (decoupled), the last flagged triton_final_response', async () => {
    const whole = await client.infer(request('w', 'Stream it', 7));
    const stream = client.stream();
    stream.write(request('s1', 'Stream it', 7));
    stream.write(request('s2', 'another prompt', 3));
    stream.end();
    const answers = await stream.finished;
    const first = answers.filter((a) => a.infer_response?.id === 's1');
    assert.equal(first.length, 7, 'one answer per token');
    assert.ok(first.every((a) => (a.error_message ?? '') === ''));
    const finals = first.map((a) => a.infer_response!.parameters!.triton_final_response?.bool_param);
    assert.deepEqual(finals, [false, false, false, false, false, false, true]);
    const text = first.map((a) => outputOf(a.infer_response!, 'text_output').values[0]).join('');
    assert.equal(text, outputOf(whole, 'text_output').values[0]);
    assert.equal(first.at(-1)!.infer_response!.parameters!.finish_reason?.string_param, 'length');
    assert.equal(answers.filter((a) => a.infer_response?.id === 's2').length, 3, 'the two requests of the stream interleave, each whole');
  });

  it('answers a refused generation with one final error answer, and the stream goes on', async () => {
    const stream = client.stream();
    stream.write({ ...request('bad', 'x', 5), parameters: { max_tokens: { int64_param: 0 } } });
    stream.write(request('good', 'x', 2));
    stream.end();
    const answers = await stream.finished;
    const bad = answers.filter((a) => a.infer_response?.id === 'bad');
    assert.equal(bad.length, 1);
    assert.match(bad[0].error_message!, /max_tokens/);
    assert.equal(bad[0].infer_response!.parameters!.triton_final_response?.bool_param, true);
    assert.equal(answers.filter((a) => a.infer_response?.id === 'good').length, 2);
  });

  it('text_input with a batch dimension of 1 ([1, 1], as TensorRT-LLM ensemble clients send it) is the same prompt; other shapes are refused, named', async () => {
    const batched = (id: string, shape: number[], prompts: string[]): ModelInferRequest => ({
      ...request(id, '', 5),
      inputs: [{ name: 'text_input', datatype: 'BYTES', shape, contents: { bytes_contents: prompts.map((prompt) => Buffer.from(prompt)) } }],
    });
    const flat = await client.infer(request('flat', 'Hello', 5));
    const withBatch = await client.infer(batched('batch', [1, 1], ['Hello']));
    assert.deepEqual(outputOf(withBatch, 'text_output').values, outputOf(flat, 'text_output').values);
    const stream = client.stream();
    stream.write(batched('streamed', [1, 1], ['Hello']));
    stream.end();
    const answers = await stream.finished;
    assert.equal(answers.map((a) => outputOf(a.infer_response!, 'text_output').values[0]).join(''), outputOf(flat, 'text_output').values[0], 'ModelStreamInfer too');
    for (const [shape, prompts] of [[[2], ['a', 'b']], [[2, 1], ['a', 'b']], [[1, 2], ['a', 'b']], [[1, 1, 1], ['a']], [[], ['a']]] as const) {
      await assert.rejects(
        client.infer(batched('bad', [...shape], [...prompts])),
        (error: { code: number; details: string }) =>
          error.code === Status.INVALID_ARGUMENT && error.details.includes(`input 'text_input' has shape [${shape.join(',')}]: a generative model takes one prompt, of shape [1], or [1, 1]`),
        `shape [${shape.join(', ')}]`,
      );
    }
  });

  it('ModelInfer refuses a prompt past max_model_len with INVALID_ARGUMENT', async () => {
    await assert.rejects(client.infer(request('long', 'a'.repeat(5000), 4)), (error: { code: number; details: string }) => error.code === Status.INVALID_ARGUMENT && /max_model_len/.test(error.details));
  });
});
