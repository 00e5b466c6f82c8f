import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { classifierModel } from '../../scripts/build-models.js';
import { InferenceClient, outputOf, rawBytes, rawOf, Status, type ModelInferRequest, type ModelInferResponse, type ServiceError } from '../support/grpc-client.js';
import { identityModelOf } from '../support/identity-models.js';
import { grpcFrame, MODEL_INFER_PATH, rawGrpcCall, serializeModelInferRequest, type RawGrpcAnswer } from '../support/raw-grpc.js';
import { rawHttpExchange, requestHead, type RawPart } from '../support/raw-http.js';
import { makeRepository, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * Hostile input, HTTP and gRPC: each request of the table gets the exact status naming what is
 * wrong with it, and the server answers a good request right after. The server runs with small
 * limits so that every limit is reached cheaply: MAX_REQUEST_BYTES 64 KiB, the slow-client
 * timeouts below, MAX_JSON_DEPTH at its default (64).
 */

const MAX_REQUEST_BYTES = 64 * 1024;
const MAX_JSON_DEPTH = 64;
const HTTP_HEADERS_TIMEOUT_MS = 400;
const HTTP_REQUEST_TIMEOUT_MS = 800;
const SAMPLE = [6.7, 3.0, 5.2, 2.3]; // the classifier answers label 2

/** The server of the suite that is running (each suite starts its own). */
let server: TestServer;
let client: InferenceClient;
let bigClient: InferenceClient;

/** What came back: an HTTP status and the `error` of its JSON body, or a gRPC code and its details. */
interface Answer {
  readonly status: number;
  readonly message: string;
  /** HTTP: whether the server closed the connection (raw-socket cases). */
  readonly closed?: boolean;
  /** HTTP: the response's body; raw gRPC: the answer's messages, framed. */
  readonly body?: Buffer;
  /** gRPC: the answer, as the client decoded it. */
  readonly response?: ModelInferResponse;
  readonly headers?: Readonly<Record<string, string>>;
}

interface HostileCase {
  readonly name: string;
  readonly transport: 'HTTP' | 'gRPC';
  send(): Promise<Answer>;
  readonly status: number;
  /** A distinctive part of the message naming what is wrong (not checked for answers that succeed). */
  readonly message?: RegExp;
  readonly closesConnection?: true;
  /** Further checks of an answer that succeeds. */
  readonly check?: (answer: Answer) => void;
}

// ---- HTTP requests -------------------------------------------------------------------------

const classifierInput = (overrides: object = {}) => ({ name: 'input', shape: [1, 4], datatype: 'FP32', data: SAMPLE, ...overrides });

async function post(model: string, body: string | Buffer, headers: Record<string, string>): Promise<Answer> {
  const response = await fetch(`${server.url}/v2/models/${model}/infer`, { method: 'POST', headers, body });
  const bytes = Buffer.from(await response.arrayBuffer());
  const type = response.headers.get('content-type') ?? '';
  const message = type.includes('json') && response.status >= 400 ? (JSON.parse(bytes.toString('utf8')) as { error: string }).error : '';
  return { status: response.status, message, body: bytes, headers: Object.fromEntries(response.headers) };
}

const postJson = (model: string, body: unknown) => post(model, typeof body === 'string' ? body : JSON.stringify(body), { 'content-type': 'application/json' });

/**
 * A body of Triton's binary tensor data extension: the JSON header, then the tensors' bytes. Sent
 * with no content type, as Triton's Python client does, unless `headers` says otherwise.
 */
function postBinary(model: string, json: object, tensors: readonly Buffer[], headers: Record<string, string> = {}): Promise<Answer> {
  const header = Buffer.from(JSON.stringify(json));
  return post(model, Buffer.concat([header, ...tensors]), { 'inference-header-content-length': String(header.length), ...headers });
}

const fp32Binary = (values: readonly number[], size = 4 * values.length, extra: object = {}) => ({
  name: 'input',
  shape: [1, values.length],
  datatype: 'FP32',
  parameters: { binary_data_size: size },
  ...extra,
});

async function raw(parts: readonly RawPart[]): Promise<Answer> {
  const answer = await rawHttpExchange(server.url, parts);
  return { status: answer.status, message: (answer.body as { error?: string })?.error ?? String(answer.body), closed: answer.closed };
}

const INFER_PATH = '/v2/models/classifier/infer';
const goodJson = JSON.stringify({ inputs: [classifierInput()] });

// ---- gRPC requests -------------------------------------------------------------------------

const grpcClassify = (overrides: Partial<ModelInferRequest['inputs'][number]> = {}): ModelInferRequest => ({
  model_name: 'classifier',
  inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: SAMPLE }, ...overrides }],
});

async function grpcInfer(request: ModelInferRequest, target: InferenceClient = client): Promise<Answer> {
  try {
    const response = await target.infer(request);
    return { status: Status.OK, message: '', response };
  } catch (error) {
    const { code, details } = error as ServiceError;
    return { status: code, message: details };
  }
}

async function grpcRaw(body: Buffer, metadata: Record<string, string> = {}, path = MODEL_INFER_PATH): Promise<Answer> {
  const answer: RawGrpcAnswer = await rawGrpcCall(server.server.grpcAddress, path, body, metadata);
  return { status: answer.code, message: answer.details, body: answer.body };
}

const goodMessage = () => serializeModelInferRequest(grpcClassify());
/** Protobuf that cannot be decoded: field 7 (raw_input_contents), length-delimited, announcing 16 bytes where 2 follow. */
const GARBAGE = Buffer.from([0x3a, 0x10, 0x01, 0x02]);

// ---- the table -----------------------------------------------------------------------------

const deepJson = (levels: number) => `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":${'['.repeat(levels)}${']'.repeat(levels)}}]}`;

const CASES: HostileCase[] = [
  // sizes and nesting
  { transport: 'HTTP', name: 'a JSON body over MAX_REQUEST_BYTES', send: () => postJson('classifier', { inputs: [classifierInput({ data: new Array(MAX_REQUEST_BYTES).fill(1) })] }), status: 413, message: /larger than the limit of 65536 bytes \(MAX_REQUEST_BYTES\)/ },
  { transport: 'HTTP', name: 'a binary body over MAX_REQUEST_BYTES', send: () => postBinary('fp32', { inputs: [{ name: 'in_fp32', shape: [1, MAX_REQUEST_BYTES / 4], datatype: 'FP32', parameters: { binary_data_size: MAX_REQUEST_BYTES } }] }, [Buffer.alloc(MAX_REQUEST_BYTES)]), status: 413, message: /larger than the limit of 65536 bytes \(MAX_REQUEST_BYTES\)/ },
  { transport: 'HTTP', name: 'JSON nested deeper than MAX_JSON_DEPTH', send: () => postJson('classifier', deepJson(MAX_JSON_DEPTH)), status: 400, message: /nests arrays and objects deeper than MAX_JSON_DEPTH \(64 levels\)/ },
  { transport: 'HTTP', name: 'a binary request whose JSON header nests deeper than MAX_JSON_DEPTH', send: () => post('classifier', deepJson(1000), { 'content-type': 'application/octet-stream' }), status: 400, message: /deeper than MAX_JSON_DEPTH \(64 levels\)/ },
  { transport: 'HTTP', name: 'a body that is not JSON', send: () => postJson('classifier', '{"inputs": [{"name": "input",'), status: 400, message: /not valid JSON/ },

  // shapes
  { transport: 'HTTP', name: 'a negative dimension', send: () => postJson('classifier', { inputs: [classifierInput({ shape: [-1, 4] })] }), status: 400, message: /input 'input' \(inputs\[0\]\.shape\[0\]\): Too small: expected number to be >=0/ },
  { transport: 'HTTP', name: 'a dimension that is not an integer', send: () => postJson('classifier', { inputs: [classifierInput({ shape: [1.5, 4] })] }), status: 400, message: /input 'input' \(inputs\[0\]\.shape\[0\]\): Invalid input: expected int, received number/ },
  { transport: 'HTTP', name: 'huge dims whose product overflows', send: () => postJson('fp32', { inputs: [{ name: 'in_fp32', shape: [2, 2 ** 52], datatype: 'FP32', data: [1] }] }), status: 400, message: /input 'in_fp32' has shape \[2,4503599627370496\] whose element count overflows/ },
  { transport: 'HTTP', name: 'an element count not matching the shape', send: () => postJson('classifier', { inputs: [classifierInput({ shape: [2, 4] })] }), status: 400, message: /input 'input' has 4 elements, but its shape \[2,4\] holds 8/ },
  { transport: 'gRPC', name: 'a negative dimension', send: () => grpcInfer(grpcClassify({ shape: [-1, 4] })), status: Status.INVALID_ARGUMENT, message: /input 'input' has an invalid dimension -1 at axis 0/ },

  // element values
  { transport: 'HTTP', name: '300 for UINT8', send: () => postJson('uint8', { inputs: [{ name: 'in_uint8', shape: [1, 1], datatype: 'UINT8', data: [300] }] }), status: 400, message: /input 'in_uint8': element 0 is 300, expected an integer from 0 to 255 for UINT8/ },
  { transport: 'HTTP', name: '1.5 for INT32', send: () => postJson('int32', { inputs: [{ name: 'in_int32', shape: [1, 2], datatype: 'INT32', data: [1, 1.5] }] }), status: 400, message: /input 'in_int32': element 1 is 1.5, expected an integer from -2147483648 to 2147483647 for INT32/ },
  { transport: 'HTTP', name: '"x" for FP32', send: () => postJson('classifier', { inputs: [classifierInput({ data: [1, 2, 'x', 4] })] }), status: 400, message: /input 'input': element 2 is "x", expected a number \(or "NaN", "Infinity", "-Infinity"\) for FP32/ },
  { transport: 'HTTP', name: '2^63 as a JSON number for INT64 (read exactly, one past INT64_MAX)', send: () => postJson('int64', `{"inputs":[{"name":"in_int64","shape":[1,1],"datatype":"INT64","data":[9223372036854775808]}]}`), status: 400, message: /input 'in_int64': element 0 is 9223372036854775808, expected an integer from -9223372036854775808 to 9223372036854775807 for INT64/ },
  { transport: 'HTTP', name: '2^63 as a decimal string for INT64 (out of range)', send: () => postJson('int64', { inputs: [{ name: 'in_int64', shape: [1, 1], datatype: 'INT64', data: ['9223372036854775808'] }] }), status: 400, message: /element 0 is "9223372036854775808", expected an integer from -9223372036854775808 to 9223372036854775807 for INT64/ },
  { transport: 'gRPC', name: '300 for UINT8 in uint_contents', send: () => grpcInfer({ model_name: 'uint8', inputs: [{ name: 'in_uint8', datatype: 'UINT8', shape: [1, 1], contents: { uint_contents: [300] } }] }), status: Status.INVALID_ARGUMENT, message: /input 'in_uint8': element 0 is 300, expected an integer from 0 to 255 for UINT8/ },
  {
    transport: 'HTTP',
    name: 'NaN and infinities for FP32, as the strings JSON clients send: accepted, answered as the same strings in valid JSON',
    send: () => postJson('fp32', { inputs: [{ name: 'in_fp32', shape: [1, 4], datatype: 'FP32', data: ['NaN', 'Infinity', '-Infinity', 1.5] }] }),
    status: 200,
    check: (answer) => assert.deepEqual(JSON.parse(answer.body!.toString('utf8')).outputs[0].data, ['NaN', 'Infinity', '-Infinity', 1.5]),
  },
  {
    transport: 'HTTP',
    name: 'NaN and infinities for FP32 as binary data: accepted, answered in JSON as strings',
    send: () => postBinary('fp32', { inputs: [{ ...fp32Binary([NaN, Infinity, -Infinity]), name: 'in_fp32' }] }, [rawOf(Float32Array.of(NaN, Infinity, -Infinity))]),
    status: 200,
    check: (answer) => {
      assert.match(answer.headers!['content-type']!, /^application\/json/);
      assert.deepEqual(JSON.parse(answer.body!.toString('utf8')).outputs[0].data, ['NaN', 'Infinity', '-Infinity']);
    },
  },
  {
    transport: 'gRPC',
    name: 'NaN and infinities for FP32 in fp32_contents: accepted, answered as they are',
    send: () => grpcInfer({ model_name: 'fp32', inputs: [{ name: 'in_fp32', datatype: 'FP32', shape: [1, 3], contents: { fp32_contents: [NaN, Infinity, -Infinity] } }] }),
    status: Status.OK,
    check: (answer) => assert.deepEqual(outputOf(answer.response!, 'out_fp32').values, [NaN, Infinity, -Infinity]),
  },

  // inputs and outputs
  { transport: 'HTTP', name: 'an input given twice', send: () => postJson('classifier', { inputs: [classifierInput(), classifierInput()] }), status: 400, message: /input 'input' is given more than once/ },
  { transport: 'HTTP', name: 'a missing input', send: () => postJson('pair', { inputs: [{ name: 'in_fp32', shape: [1, 1], datatype: 'FP32', data: [1] }] }), status: 400, message: /missing input 'in_int64'/ },
  { transport: 'HTTP', name: 'an unknown input', send: () => postJson('classifier', { inputs: [classifierInput(), classifierInput({ name: 'extra' })] }), status: 400, message: /unknown input 'extra': the model's inputs are 'input'/ },
  { transport: 'HTTP', name: 'an input without data', send: () => postJson('classifier', { inputs: [classifierInput({ data: undefined })] }), status: 400, message: /input 'input' has no "data"/ },
  { transport: 'HTTP', name: 'an unknown output', send: () => postJson('classifier', { inputs: [classifierInput()], outputs: [{ name: 'logits' }] }), status: 400, message: /unknown output 'logits': the model's outputs are 'probabilities', 'label'/ },
  { transport: 'HTTP', name: 'an output asked twice', send: () => postJson('classifier', { inputs: [classifierInput()], outputs: [{ name: 'label' }, { name: 'label' }] }), status: 400, message: /output 'label' is requested more than once/ },
  { transport: 'gRPC', name: 'an input given twice', send: () => grpcInfer({ model_name: 'classifier', inputs: [...grpcClassify().inputs, ...grpcClassify().inputs] }), status: Status.INVALID_ARGUMENT, message: /input 'input' is given more than once/ },

  // strings
  { transport: 'HTTP', name: 'a BYTES element with a NUL byte (JSON)', send: () => postJson('bytes', { inputs: [{ name: 'in_bytes', shape: [1, 2], datatype: 'BYTES', data: ['ok', 'a\u0000b'] }] }), status: 400, message: /input 'in_bytes': element 1 holds a NUL byte/ },
  { transport: 'HTTP', name: 'a BYTES element with a NUL byte (binary)', send: () => postBinary('bytes', { inputs: [{ name: 'in_bytes', shape: [1, 1], datatype: 'BYTES', parameters: { binary_data_size: 7 } }] }, [rawBytes(['a\u0000b'])]), status: 400, message: /input 'in_bytes': element 0 holds a NUL byte/ },
  { transport: 'HTTP', name: 'a BYTES element that is not UTF-8 (binary)', send: () => postBinary('bytes', { inputs: [{ name: 'in_bytes', shape: [1, 1], datatype: 'BYTES', parameters: { binary_data_size: 6 } }] }, [rawBytes([Buffer.from([0xff, 0xfe])])]), status: 400, message: /input 'in_bytes': BYTES element 0 is not valid UTF-8/ },
  { transport: 'HTTP', name: 'a BYTES length prefix past the end (binary)', send: () => postBinary('bytes', { inputs: [{ name: 'in_bytes', shape: [1, 1], datatype: 'BYTES', parameters: { binary_data_size: 5 } }] }, [Buffer.from([9, 0, 0, 0, 0x41])]), status: 400, message: /input 'in_bytes': raw BYTES element 0 says 9 bytes, but only 1 remain/ },
  { transport: 'gRPC', name: 'a BYTES element that is not UTF-8', send: () => grpcInfer({ model_name: 'bytes', inputs: [{ name: 'in_bytes', datatype: 'BYTES', shape: [1, 1], contents: { bytes_contents: [Buffer.from([0xe6, 0x97])] } }] }), status: Status.INVALID_ARGUMENT, message: /input 'in_bytes': BYTES element 0 is not valid UTF-8/ },

  // the binary data extension
  { transport: 'HTTP', name: 'Inference-Header-Content-Length negative', send: () => post('classifier', goodJson, { 'inference-header-content-length': '-1' }), status: 400, message: /header inference-header-content-length is "-1", expected the byte length of the JSON header \(a non-negative integer\)/ },
  { transport: 'HTTP', name: 'Inference-Header-Content-Length not an integer', send: () => post('classifier', goodJson, { 'inference-header-content-length': '12.5' }), status: 400, message: /header inference-header-content-length is "12.5", expected/ },
  { transport: 'HTTP', name: 'Inference-Header-Content-Length larger than the body', send: () => post('classifier', goodJson, { 'inference-header-content-length': '100000' }), status: 400, message: new RegExp(`header inference-header-content-length is 100000, but the body has only ${goodJson.length} bytes`) },
  { transport: 'HTTP', name: 'Inference-Header-Content-Length cutting the JSON short', send: () => post('classifier', goodJson, { 'inference-header-content-length': '20' }), status: 400, message: /the first 20 bytes of the body \(header inference-header-content-length\) are not a JSON document/ },
  { transport: 'HTTP', name: 'binary_data_size negative', send: () => postBinary('classifier', { inputs: [fp32Binary(SAMPLE, -16)] }, [rawOf(Float32Array.from(SAMPLE))]), status: 400, message: /input 'input': binary_data_size is -16, expected a non-negative integer/ },
  { transport: 'HTTP', name: 'binary_data_size not an integer', send: () => postBinary('classifier', { inputs: [fp32Binary(SAMPLE, 15.5)] }, [rawOf(Float32Array.from(SAMPLE))]), status: 400, message: /input 'input': binary_data_size is 15.5, expected a non-negative integer/ },
  { transport: 'HTTP', name: 'binary_data_size larger than the bytes that follow', send: () => postBinary('classifier', { inputs: [fp32Binary(SAMPLE, 1000)] }, [rawOf(Float32Array.from(SAMPLE))]), status: 400, message: /input 'input': binary_data_size is 1000, but only 16 bytes of binary data remain/ },
  {
    transport: 'HTTP',
    name: 'binary sizes adding up to less than the body (bytes left over)',
    send: () => postBinary('classifier', { inputs: [fp32Binary(SAMPLE)] }, [rawOf(Float32Array.from(SAMPLE)), Buffer.alloc(4)]),
    status: 400,
    message: /the body has 4 bytes of binary data beyond what the inputs' binary_data_size parameters account for \(16 bytes\)/,
  },
  {
    transport: 'HTTP',
    name: 'binary sizes adding up to more than the body (the second input short)',
    send: () =>
      postBinary(
        'pair',
        { inputs: [{ name: 'in_fp32', shape: [1, 1], datatype: 'FP32', parameters: { binary_data_size: 4 } }, { name: 'in_int64', shape: [1, 1], datatype: 'INT64', parameters: { binary_data_size: 8 } }] },
        [rawOf(Float32Array.of(1)), Buffer.alloc(4)],
      ),
    status: 400,
    message: /input 'in_int64': binary_data_size is 8, but only 4 bytes of binary data remain/,
  },
  { transport: 'HTTP', name: 'binary_data_size inconsistent with shape and datatype', send: () => postBinary('classifier', { inputs: [fp32Binary(SAMPLE.slice(0, 3), 12, { shape: [1, 4] })] }, [rawOf(Float32Array.from(SAMPLE.slice(0, 3)))]), status: 400, message: /input 'input': its binary data \(binary_data_size\) has 12 bytes, expected 16 \(4 FP32 elements of 4 bytes for shape \[1,4\]\)/ },
  { transport: 'HTTP', name: 'data together with binary_data_size', send: () => postBinary('classifier', { inputs: [fp32Binary(SAMPLE, 16, { data: SAMPLE })] }, [rawOf(Float32Array.from(SAMPLE))]), status: 400, message: /input 'input' has both "data" and the parameter binary_data_size/ },
  { transport: 'HTTP', name: 'binary_data_size in a plain JSON request', send: () => postJson('classifier', { inputs: [fp32Binary(SAMPLE)] }), status: 400, message: /binary_data_size is 16, but only 0 bytes of binary data remain .*without the header inference-header-content-length, the whole body is JSON/ },
  { transport: 'HTTP', name: 'a binary BOOL byte other than 0 or 1', send: () => postBinary('bool', { inputs: [{ name: 'in_bool', shape: [1, 2], datatype: 'BOOL', parameters: { binary_data_size: 2 } }] }, [Buffer.from([1, 2])]), status: 400, message: /input 'in_bool': BOOL element 1 is the byte 2, expected 0 or 1/ },
  { transport: 'HTTP', name: 'binary_data on an output not a boolean', send: () => postJson('classifier', { inputs: [classifierInput()], outputs: [{ name: 'label', parameters: { binary_data: 'yes' } }] }), status: 400, message: /output 'label': parameter binary_data is "yes", expected true or false/ },

  // HTTP framing, on a raw socket: answered by Node's parser and the slow-client timeouts
  { transport: 'HTTP', name: 'Content-Length beside Transfer-Encoding', send: () => raw([requestHead('POST', INFER_PATH, { 'content-type': 'application/json', 'content-length': goodJson.length, 'transfer-encoding': 'chunked' }), goodJson]), status: 400, message: /malformed HTTP request: Transfer-Encoding can't be present with Content-Length \(HPE_INVALID_TRANSFER_ENCODING\)/, closesConnection: true },
  { transport: 'HTTP', name: 'Content-Length twice, with different values', send: () => raw([requestHead('POST', INFER_PATH, [['content-type', 'application/json'], ['content-length', goodJson.length], ['content-length', 5]]), goodJson]), status: 400, message: /malformed HTTP request: Duplicate Content-Length \(HPE_UNEXPECTED_CONTENT_LENGTH\)/, closesConnection: true },
  { transport: 'HTTP', name: 'a chunk size that is not hexadecimal', send: () => raw([requestHead('POST', INFER_PATH, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }), `zz\r\n${goodJson}\r\n0\r\n\r\n`]), status: 400, message: /malformed HTTP request: Invalid character in chunk size \(HPE_INVALID_CHUNK_SIZE\)/, closesConnection: true },
  { transport: 'HTTP', name: 'headers over Node\'s size limit', send: () => raw([requestHead('POST', INFER_PATH, { 'x-padding': 'a'.repeat(20_000) })]), status: 431, message: /the request headers are larger than 16384 bytes/, closesConnection: true },
  { transport: 'HTTP', name: 'headers sent too slowly', send: () => raw([`POST ${INFER_PATH} HTTP/1.1\r\nHost: localhost\r\n`, ...trickle('x-slow: 1\r\n', 100)]), status: 408, message: /the request headers were not received within HTTP_HEADERS_TIMEOUT_MS \(400 ms\)/, closesConnection: true },
  { transport: 'HTTP', name: 'a body sent too slowly', send: () => raw([requestHead('POST', INFER_PATH, { 'content-type': 'application/json', 'content-length': goodJson.length }), ...trickle(goodJson, 100)]), status: 408, message: /the request was not received in full within HTTP_REQUEST_TIMEOUT_MS \(800 ms\)/, closesConnection: true },
  { transport: 'HTTP', name: 'Content-Length larger than the body, then silence', send: () => raw([requestHead('POST', INFER_PATH, { 'content-type': 'application/json', 'content-length': goodJson.length + 100 }), goodJson]), status: 408, message: /the request was not received in full within HTTP_REQUEST_TIMEOUT_MS \(800 ms\)/, closesConnection: true },

  // gRPC framing and protobuf
  { transport: 'gRPC', name: 'bytes that are not a protobuf message', send: () => grpcRaw(grpcFrame(GARBAGE)), status: Status.INVALID_ARGUMENT, message: /the request is not a valid ModelInferRequest protobuf message: index out of range: 2 \+ 16 > 4/ },
  {
    transport: 'gRPC',
    name: 'bytes that are not a protobuf message, in a ModelStreamInfer stream: answered with error_message, the stream goes on',
    send: () => grpcRaw(Buffer.concat([grpcFrame(GARBAGE), grpcFrame(goodMessage())]), {}, MODEL_INFER_PATH.replace('ModelInfer', 'ModelStreamInfer')),
    status: Status.OK,
    check: (answer) => {
      const text = answer.body!.toString('latin1');
      assert.match(text, /the request is not a valid ModelInferRequest protobuf message/);
      assert.match(text, /probabilities/, 'the second request of the stream is answered');
    },
  },
  { transport: 'gRPC', name: 'a length prefix announcing more bytes than sent', send: () => grpcRaw(grpcFrame(goodMessage(), { declaredLength: goodMessage().length + 100 })), status: Status.UNIMPLEMENTED, message: /Received no request message for server streaming method \/inference\.GRPCInferenceService\/ModelInfer/ },
  // The bytes after the announced ones are read as the next frame, whose "length" is text of the message.
  { transport: 'gRPC', name: 'a length prefix announcing fewer bytes than sent', send: () => grpcRaw(grpcFrame(goodMessage(), { declaredLength: 2 })), status: Status.RESOURCE_EXHAUSTED, message: /Received message larger than max \(\d+ vs 65536\)/ },
  { transport: 'gRPC', name: 'a length prefix over the receive limit', send: () => grpcRaw(grpcFrame(goodMessage(), { declaredLength: MAX_REQUEST_BYTES + 1 })), status: Status.RESOURCE_EXHAUSTED, message: /Received message larger than max \(65537 vs 65536\)/ },
  { transport: 'gRPC', name: 'a message larger than MAX_REQUEST_BYTES', send: () => grpcInfer({ model_name: 'fp32', inputs: [{ name: 'in_fp32', datatype: 'FP32', shape: [1, MAX_REQUEST_BYTES / 4] }], raw_input_contents: [Buffer.alloc(MAX_REQUEST_BYTES)] }, bigClient), status: Status.RESOURCE_EXHAUSTED, message: /Received message larger than max \(\d+ vs 65536\)/ },
  { transport: 'gRPC', name: 'the compressed flag on an uncompressed message, without grpc-encoding', send: () => grpcRaw(grpcFrame(goodMessage(), { compressed: true })), status: Status.OK, check: (answer) => assert.match(answer.body!.toString('latin1'), /probabilities/) },
  { transport: 'gRPC', name: 'the compressed flag with grpc-encoding gzip on bytes that are not gzip', send: () => grpcRaw(grpcFrame(goodMessage(), { compressed: true }), { 'grpc-encoding': 'gzip' }), status: Status.INTERNAL, message: /Failed to decompress message/ },
  { transport: 'gRPC', name: 'a compression the server does not know', send: () => grpcRaw(grpcFrame(goodMessage(), { compressed: true }), { 'grpc-encoding': 'snappy' }), status: Status.UNIMPLEMENTED, message: /Received message compressed with unsupported encoding "snappy"/ },
];

/** `text` one byte at a time, `pauseMs` apart: a client that never finishes in time. */
function trickle(text: string, pauseMs: number): RawPart[] {
  return [...text].flatMap((character) => [character, { pauseMs }]);
}

describe('hostile input: a precise 4xx or gRPC status, and the server serves on', () => {
  const goodRequests = { sent: 0, succeeded: 0 };
  let rssBefore: number;

  before(async () => {
    const repository = await makeRepository([
      { name: 'classifier', onnx: classifierModel() },
      { name: 'fp32', onnx: identityModelOf(['FP32']) },
      { name: 'uint8', onnx: identityModelOf(['UINT8']) },
      { name: 'int32', onnx: identityModelOf(['INT32']) },
      { name: 'int64', onnx: identityModelOf(['INT64']) },
      { name: 'bool', onnx: identityModelOf(['BOOL']) },
      { name: 'bytes', onnx: identityModelOf(['BYTES']) },
      { name: 'pair', onnx: identityModelOf(['FP32', 'INT64']) },
    ]);
    server = await startTestServer(repository, {
      MAX_REQUEST_BYTES: String(MAX_REQUEST_BYTES),
      MAX_JSON_DEPTH: String(MAX_JSON_DEPTH),
      HTTP_HEADERS_TIMEOUT_MS: String(HTTP_HEADERS_TIMEOUT_MS),
      HTTP_REQUEST_TIMEOUT_MS: String(HTTP_REQUEST_TIMEOUT_MS),
    });
    client = new InferenceClient(server.server.grpcAddress);
    bigClient = new InferenceClient(server.server.grpcAddress, { 'grpc.max_send_message_length': -1 });
    await goodHttpRequest(); // warm: the first run's allocations are not growth
    await goodGrpcRequest();
    rssBefore = process.memoryUsage().rss;
  });
  after(async () => {
    client.close();
    bigClient.close();
    await server.close();
  });

  async function goodHttpRequest(): Promise<void> {
    const answer = await postJson('classifier', { inputs: [classifierInput()] });
    assert.equal(answer.status, 200, answer.message);
    assert.deepEqual(JSON.parse(answer.body!.toString('utf8')).outputs[1].data, [2]);
  }

  async function goodGrpcRequest(): Promise<void> {
    const response = await client.infer(grpcClassify());
    assert.deepEqual(outputOf(response, 'label').values, [2n]);
  }

  it('has a table of at least 30 cases', () => {
    assert.ok(CASES.length >= 30, `${CASES.length} cases`);
  });

  for (const hostile of CASES) {
    it(`${hostile.transport}: ${hostile.name} -> ${hostile.transport === 'HTTP' ? hostile.status : Status[hostile.status]}`, { timeout: 15_000 }, async () => {
      const answer = await hostile.send();
      const shown = hostile.transport === 'HTTP' ? String(answer.status) : Status[answer.status];
      assert.equal(answer.status, hostile.status, `answered ${shown}: ${answer.message}`);
      if (hostile.message) assert.match(answer.message, hostile.message);
      if (hostile.closesConnection) assert.equal(answer.closed, true, 'the server closes the connection');
      hostile.check?.(answer);
      goodRequests.sent++;
      await (hostile.transport === 'HTTP' ? goodHttpRequest() : goodGrpcRequest());
      goodRequests.succeeded++;
    });
  }

  it('answered every good request after a hostile one, and its memory stayed bounded', () => {
    assert.equal(goodRequests.succeeded, CASES.length);
    assert.equal(goodRequests.sent, CASES.length);
    const growthMiB = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
    assert.ok(growthMiB < 256, `the process's RSS grew by ${growthMiB.toFixed(0)} MiB over the table`);
  });
});

describe('the binary tensor data extension, with what Triton\'s clients send', () => {
  before(async () => {
    server = await startTestServer(
      await makeRepository([
        { name: 'classifier', onnx: classifierModel() },
        { name: 'pair', onnx: identityModelOf(['FP32', 'INT64']) },
        { name: 'bytes', onnx: identityModelOf(['BYTES']) },
        { name: 'fp16', onnx: identityModelOf(['FP16']) },
      ]),
    );
  });
  after(() => server.close());

  const input = { name: 'input', shape: [2, 4], datatype: 'FP32', parameters: { binary_data_size: 32 } };
  const rows = rawOf(Float32Array.of(...SAMPLE, 5.1, 3.5, 1.4, 0.2));

  for (const [what, headers] of [
    ['no content type', {}],
    ['application/octet-stream', { 'content-type': 'application/octet-stream' }],
    ['application/json', { 'content-type': 'application/json' }],
  ] as const) {
    it(`reads a binary request sent with ${what}, and answers the outputs asked as binary after a JSON header`, async () => {
      const answer = await postBinary('classifier', { inputs: [input], outputs: [{ name: 'probabilities' }, { name: 'label', parameters: { binary_data: true } }] }, [rows], headers);
      assert.equal(answer.status, 200, answer.message);
      assert.equal(answer.headers!['content-type'], 'application/octet-stream');
      const jsonLength = Number(answer.headers!['inference-header-content-length']);
      const header = JSON.parse(answer.body!.subarray(0, jsonLength).toString('utf8'));
      const [probabilities, label] = header.outputs;
      assert.equal(probabilities.data.length, 6, 'an output not asked as binary stays JSON');
      assert.deepEqual(label, { name: 'label', datatype: 'INT64', shape: [2], parameters: { binary_data_size: 16 } });
      assert.deepEqual([...new BigInt64Array(new Uint8Array(answer.body!.subarray(jsonLength)).buffer)], [2n, 0n]);
    });
  }

  it('answers every output as binary with the request parameter binary_data_output, an output\'s binary_data: false overriding it', async () => {
    const answer = await postBinary('classifier', { parameters: { binary_data_output: true }, inputs: [input], outputs: [{ name: 'probabilities' }, { name: 'label', parameters: { binary_data: false } }] }, [rows]);
    assert.equal(answer.status, 200, answer.message);
    const jsonLength = Number(answer.headers!['inference-header-content-length']);
    const header = JSON.parse(answer.body!.subarray(0, jsonLength).toString('utf8'));
    assert.deepEqual(header.outputs[0].parameters, { binary_data_size: 24 });
    assert.equal(header.outputs[0].data, undefined);
    assert.deepEqual(header.outputs[1].data, [2, 0]);
    assert.equal(answer.body!.length, jsonLength + 24);
  });

  it('takes JSON inputs and binary inputs in one request, and a whole body of JSON without the header', async () => {
    const mixed = await postBinary(
      'pair',
      { inputs: [{ name: 'in_fp32', shape: [1, 2], datatype: 'FP32', data: [0.5, 'NaN'] }, { name: 'in_int64', shape: [1, 1], datatype: 'INT64', parameters: { binary_data_size: 8 } }] },
      [rawOf(BigInt64Array.of(-(2n ** 63n)))],
    );
    assert.equal(mixed.status, 200, mixed.message);
    const outputs = Object.fromEntries(JSON.parse(mixed.body!.toString('utf8')).outputs.map((output: { name: string; data: unknown[] }) => [output.name, output.data]));
    assert.deepEqual(outputs.out_fp32, [0.5, 'NaN']);
    assert.match(mixed.body!.toString('utf8'), /"data":\[-9223372036854775808\]/, 'INT64 exact in JSON');
    const plain = await post('classifier', goodJson, {}); // no content type, no header: all JSON, as Triton reads it
    assert.equal(plain.status, 200, plain.message);
    assert.deepEqual(JSON.parse(plain.body!.toString('utf8')).outputs[1].data, [2]);
  });

  it('round-trips BYTES (length-prefixed) and FP16 (which JSON can only approximate) as binary data', async () => {
    const strings = ['', 'héllo', '日本語'];
    const bytes = await postBinary('bytes', { inputs: [{ name: 'in_bytes', shape: [1, 3], datatype: 'BYTES', parameters: { binary_data_size: rawBytes(strings).length } }], parameters: { binary_data_output: true } }, [rawBytes(strings)]);
    assert.equal(bytes.status, 200, bytes.message);
    const bytesJsonLength = Number(bytes.headers!['inference-header-content-length']);
    assert.ok(bytes.body!.subarray(bytesJsonLength).equals(rawBytes(strings)));
    const halves = rawOf(Uint16Array.of(0x3c00, 0x7c00, 0x7e00)); // 1, +Infinity, NaN
    const fp16 = await postBinary('fp16', { inputs: [{ name: 'in_fp16', shape: [1, 3], datatype: 'FP16', parameters: { binary_data_size: 6 } }], parameters: { binary_data_output: true } }, [halves]);
    assert.equal(fp16.status, 200, fp16.message);
    assert.ok(fp16.body!.subarray(Number(fp16.headers!['inference-header-content-length'])).equals(halves));
  });

  it('names the server extension in the server metadata', async () => {
    const metadata = (await (await fetch(`${server.url}/v2`)).json()) as { extensions: string[] };
    assert.ok(metadata.extensions.includes('binary_tensor_data'), metadata.extensions.join(', '));
  });
});
