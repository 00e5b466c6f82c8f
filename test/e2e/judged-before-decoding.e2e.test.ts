import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { InferenceClient, Status, type ServiceError } from '../support/grpc-client.js';
import { identityModelOf } from '../support/identity-models.js';
import { makeRepository, postJson, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Issue 15, item 4: a request is judged on what it declares (names, datatypes, shapes, element
 * counts) before any of its elements is parsed or decoded. Each attack below is a large body for a
 * shape the model refuses; the test watches what the server parses and decodes while refusing it
 * (no JSON text beyond the envelope is parsed, no typed float is decoded), then that the live probe
 * and a good request are answered.
 */

/** Elements per attack: enough to be costly to decode, few enough for the suite. */
const ELEMENTS = 1_000_000;
const SAMPLE = [6.7, 3.0, 5.2, 2.3];

/** The longest text JSON.parse was given while `during` ran (Fastify's and our parsers both call it). */
async function longestJsonParsed<T>(during: () => Promise<T>): Promise<{ result: T; longest: number }> {
  const parse = JSON.parse;
  let longest = 0;
  JSON.parse = function (text: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) {
    longest = Math.max(longest, text.length);
    return parse.call(JSON, text, reviver);
  };
  try {
    return { result: await during(), longest };
  } finally {
    JSON.parse = parse;
  }
}

/** The protobuf.js reader grpc-js decodes requests with (the copy @grpc/proto-loader loads). */
const protobufReader = (createRequire(createRequire(import.meta.url).resolve('@grpc/proto-loader'))('protobufjs') as { Reader: { prototype: { float(): number } } }).Reader;

/** How many float elements protobuf.js decoded while `during` ran. */
async function floatsDecoded<T>(during: () => Promise<T>): Promise<{ result: T; floats: number }> {
  const prototype = protobufReader.prototype;
  const float = prototype.float;
  let floats = 0;
  prototype.float = function (this: unknown) {
    floats++;
    return float.call(this);
  };
  try {
    return { result: await during(), floats };
  } finally {
    prototype.float = float;
  }
}

describe('requests are judged before their elements are decoded', () => {
  let server: TestServer;
  let client: InferenceClient;
  before(async () => {
    server = await startTestServer(await makeRepository([{ name: 'classifier', onnx: classifierModel() }, { name: 'bytes', onnx: identityModelOf(['BYTES']) }]));
    client = new InferenceClient(server.server.grpcAddress, { 'grpc.max_send_message_length': -1 });
  });
  after(() => server.close());

  async function stillServing(): Promise<void> {
    assert.equal((await fetch(`${server.url}/v2/health/live`)).status, 200);
    const { status, body } = await postJson(`${server.url}/v2/models/classifier/infer`, { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: SAMPLE }] });
    assert.equal(status, 200, JSON.stringify(body));
  }

  it('HTTP JSON: a million numbers for a batch size over max_batch_size are refused without being parsed', async () => {
    const body = JSON.stringify({ inputs: [{ name: 'input', shape: [ELEMENTS / 4, 4], datatype: 'FP32', data: new Array(ELEMENTS).fill(0.5) }] });
    const { result, longest } = await longestJsonParsed(() => postJson(`${server.url}/v2/models/classifier/infer`, body));
    assert.equal(result.status, 400);
    assert.match(result.body.error, /input 'input' has batch size 250000, expected 1 to 8 \(the model's max_batch_size\)/);
    assert.ok(longest < 4096, `a JSON text of ${longest} characters was parsed (the body has ${body.length})`);
    await stillServing();
  });

  it('HTTP JSON: an element count that is not the shape\'s is refused from the scan, nested data included', async () => {
    const body = JSON.stringify({ inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: Array.from({ length: ELEMENTS / 4 }, () => SAMPLE) }] });
    const { result, longest } = await longestJsonParsed(() => postJson(`${server.url}/v2/models/classifier/infer`, body));
    assert.equal(result.status, 400);
    assert.match(result.body.error, /input 'input' has 1000000 elements, but its shape \[2,4\] holds 8/);
    assert.ok(longest < 4096, `a JSON text of ${longest} characters was parsed`);
    await stillServing();
  });

  it('HTTP JSON: a million empty BYTES strings for the wrong batch size are refused without being parsed', async () => {
    const body = JSON.stringify({ inputs: [{ name: 'in_bytes', shape: [16, ELEMENTS / 16], datatype: 'BYTES', data: new Array(ELEMENTS).fill('') }] });
    const { result, longest } = await longestJsonParsed(() => postJson(`${server.url}/v2/models/bytes/infer`, body));
    assert.equal(result.status, 400);
    assert.match(result.body.error, /input 'in_bytes' has batch size 16, expected 1 to 8/);
    assert.ok(longest < 4096, `a JSON text of ${longest} characters was parsed`);
    await stillServing();
  });

  it('HTTP JSON: what a request carries outside its data is bounded (1 MiB), and a good request still parses its data', async () => {
    const padded = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: SAMPLE }], padding: 'x'.repeat(2 * 1024 * 1024) });
    const refused = await postJson(`${server.url}/v2/models/classifier/infer`, padded);
    assert.equal(refused.status, 400);
    assert.match(refused.body.error, /the request's JSON outside its inputs' "data" is \d+ bytes, more than 1048576/);
    await stillServing();
  });

  it('gRPC typed contents: a million fp32_contents for the wrong batch size are refused without being decoded', async () => {
    const { result, floats } = await floatsDecoded(async () => {
      try {
        await client.infer({ model_name: 'classifier', inputs: [{ name: 'input', datatype: 'FP32', shape: [ELEMENTS / 4, 4], contents: { fp32_contents: new Array(ELEMENTS).fill(0.5) } }] });
        return undefined;
      } catch (error) {
        return error as ServiceError;
      }
    });
    assert.equal(result?.code, Status.INVALID_ARGUMENT);
    assert.match(result!.details, /input 'input' has batch size 250000, expected 1 to 8/);
    assert.equal(floats, 0, 'the server decoded the typed contents of a request it refused');
    await stillServing();
  });

  it('gRPC typed contents: the count is read on the wire, and a good request decodes them', async () => {
    const wrongCount = await client.infer({ model_name: 'classifier', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: new Array(ELEMENTS).fill(0.5) } }] }).then(
      () => assert.fail('a million elements for a [1,4] input were taken'),
      (error: ServiceError) => error,
    );
    assert.equal(wrongCount.code, Status.INVALID_ARGUMENT);
    assert.match(wrongCount.details, /input 'input' has 1000000 elements, but its shape \[1,4\] holds 4/);
    const good = await client.infer({ model_name: 'classifier', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: SAMPLE } }] });
    assert.deepEqual(good.outputs.map((output) => output.name), ['probabilities', 'label']);
  });
});
