import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { deflateSync, gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import { classifierModel } from '../../scripts/build-models.js';
import { InferenceClient, Status, type ServiceError } from '../support/grpc-client.js';
import { identityModelOf } from '../support/identity-models.js';
import { rawHttpExchange, requestHead } from '../support/raw-http.js';
import { bearer, makeRepository, startTestServer, type TestServer } from '../support/test-server.js';

/**
 * HTTP as Triton's own clients send it (tritonclient.http and http.aio), which must work unchanged:
 * repository and admin bodies with no content type or as octet-stream, and the token checked
 * before any body; gzip/deflate request bodies and answers; rapidjson's bare NaN and infinities;
 * 64-bit integers as exact JSON digits; an unknown model judged before its body; Triton's wording
 * where its clients' examples test for it.
 */

const TOKEN = 'triton-http-client-token-0123456789';
const admin = bearer(TOKEN);
const MAX_REQUEST_BYTES = 64 * 1024;
const SAMPLE = [6.7, 3.0, 5.2, 2.3]; // the classifier answers label 2
const INT64_MIN = '-9223372036854775808';
const INT64_MAX = '9223372036854775807';
const UINT64_MAX = '18446744073709551615';

let server: TestServer;
let grpc: InferenceClient;

interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** The body as it came, compressed or not. */
  readonly bytes: Buffer;
  /** The `error` of a JSON error body. */
  readonly error?: string;
}

/** A request over node:http, which (unlike fetch) neither adds headers nor decompresses the answer. */
function send(method: string, path: string, headers: Record<string, string | number>, body?: string | Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(server.url);
    const req = httpRequest({ hostname, port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const bytes = Buffer.concat(chunks);
        const isError = (res.statusCode ?? 0) >= 400 && (res.headers['content-type'] ?? '').includes('json');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, error: isError ? (JSON.parse(bytes.toString('utf8')) as { error: string }).error : undefined });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const infer = (model: string, headers: Record<string, string | number>, body: string | Buffer) => send('POST', `/v2/models/${model}/infer`, headers, body);
const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const classify = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: SAMPLE }] };

/** A body of Triton's binary tensor data extension: the JSON header, then the tensors' bytes. */
function binaryBody(header: object, ...tensors: Buffer[]): { body: Buffer; jsonLength: number } {
  const jsonBytes = json(header);
  return { body: Buffer.concat([jsonBytes, ...tensors]), jsonLength: jsonBytes.length };
}

function assertLabel2(text: string): void {
  const answer = JSON.parse(text) as { outputs: { name: string; data: number[] }[] };
  assert.deepEqual(answer.outputs.find((output) => output.name === 'label')?.data, [2], text);
}

describe('HTTP as Triton clients send it', () => {
  before(async () => {
    const repository = await makeRepository([
      { name: 'classifier', onnx: classifierModel() },
      { name: 'reloadable', onnx: classifierModel(), config: { max_batch_size: 8 } },
      { name: 'fp32', onnx: identityModelOf(['FP32']) },
      { name: 'int64', onnx: identityModelOf(['INT64']) },
      { name: 'uint64', onnx: identityModelOf(['UINT64']) },
    ]);
    server = await startTestServer(repository, {
      ADMIN_TOKEN: TOKEN,
      STRICT_READINESS: 'false',
      MAX_REQUEST_BYTES: String(MAX_REQUEST_BYTES),
      // A body that never completes is a 408 after this, rather than a test that hangs.
      HTTP_REQUEST_TIMEOUT_MS: '5000',
    });
    grpc = new InferenceClient(server.server.grpcAddress);
  });
  after(async () => {
    grpc.close();
    await server.close();
  });

  describe('repository and admin bodies', () => {
    it('reads a JSON body sent with no content type (tritonclient.http)', async () => {
      const index = await send('POST', '/v2/repository/index', admin, '{"ready": true}');
      assert.equal(index.status, 200, index.error);
      const entries = JSON.parse(index.bytes.toString('utf8')) as { name: string; state: string }[];
      assert.ok(entries.length >= 5 && entries.every((entry) => entry.state === 'READY'), index.bytes.toString('utf8'));
      const load = await send('POST', '/v2/repository/models/reloadable/load', admin, JSON.stringify({ parameters: { config: '{"max_batch_size": 4}' } }));
      assert.equal(load.status, 200, load.error);
      assert.equal((await grpc.unary('ModelConfig', { name: 'reloadable' })).config.max_batch_size, 4);
    });

    it('reads a JSON body sent as application/octet-stream (tritonclient.http.aio sends bytes)', async () => {
      const octet = { ...admin, 'content-type': 'application/octet-stream' };
      assert.equal((await send('POST', '/v2/repository/index', octet, '')).status, 200, 'get_model_repository_index sends an empty body');
      const load = await send('POST', '/v2/repository/models/reloadable/load', octet, JSON.stringify({ parameters: { config: '{"max_batch_size": 2}' } }));
      assert.equal(load.status, 200, load.error);
      assert.equal((await grpc.unary('ModelConfig', { name: 'reloadable' })).config.max_batch_size, 2);
      const unload = await send('POST', '/v2/repository/models/reloadable/unload', octet, JSON.stringify({ parameters: { unload_dependents: false } }));
      assert.equal(unload.status, 200, unload.error);
      const reload = await send('POST', '/v2/repository/models/reloadable/load', octet, '{}');
      assert.equal(reload.status, 200, reload.error);
    });

    it('reads an empty body sent as JSON as {}', async () => {
      const emptyJson = { ...admin, 'content-type': 'application/json', 'content-length': 0 };
      for (const path of ['/v2/repository/index', '/v2/repository/models/reloadable/load']) {
        const answer = await send('POST', path, emptyJson);
        assert.equal(answer.status, 200, `${path}: ${answer.error}`);
      }
      const noVersion = await send('PUT', '/admin/models/reloadable/default-version', emptyJson);
      assert.equal(noVersion.status, 400);
      assert.match(noVersion.error!, /^version: /, 'the body is {}: its field is what is missing');
      const reload = await send('POST', '/v2/repository/models/reloadable/load', admin);
      assert.equal(reload.status, 200, reload.error);
    });

    it('still refuses a body that is not JSON, once the token is checked', async () => {
      const answer = await send('POST', '/v2/repository/index', { ...admin, 'content-type': 'application/octet-stream' }, '{"ready": tru');
      assert.equal(answer.status, 400);
      assert.match(answer.error!, /^the body is not valid JSON/);
    });

    const calls: [string, string][] = [
      ['POST', '/v2/repository/index'],
      ['POST', '/v2/repository/models/reloadable/load'],
      ['POST', '/v2/repository/models/reloadable/unload'],
      ['POST', '/admin/models/reloadable/versions/1/load'],
      ['POST', '/admin/models/reloadable/versions/1/unload'],
      ['PUT', '/admin/models/reloadable/versions/9'],
      ['PUT', '/admin/models/reloadable/default-version'],
      ['PUT', '/admin/models/reloadable/rollout'],
      ['POST', '/admin/models/reloadable/rollout/promote'],
      ['POST', '/admin/models/reloadable/rollout/abort'],
    ];
    const bodies: [string, Record<string, string>, string][] = [
      ['bad JSON sent as JSON', { 'content-type': 'application/json' }, '{"ready":'],
      ['an empty body sent as JSON', { 'content-type': 'application/json' }, ''],
      ['text/plain', { 'content-type': 'text/plain' }, 'hello'],
      ['multipart', { 'content-type': 'multipart/form-data; boundary=x' }, '--x--'],
      ['a malformed content type', { 'content-type': ';;; /' }, '{}'],
      ['octet-stream', { 'content-type': 'application/octet-stream' }, '\u0000\u0001'],
      ['no content type', {}, 'not json'],
    ];
    for (const [method, path] of calls) {
      it(`${method} ${path}: 401 without a token, whatever the body, never 415 or 400`, async () => {
        for (const [what, headers, body] of bodies) {
          const answer = await send(method, path, headers, body);
          assert.equal(answer.status, 401, `${what}: ${answer.status} ${answer.error}`);
          assert.match(answer.error!, /Authorization: Bearer <token>/);
          assert.equal(answer.headers['www-authenticate'], 'Bearer');
        }
      });
    }
  });

  describe('Content-Encoding on the infer routes', () => {
    for (const [coding, compress] of [
      ['gzip', gzipSync],
      ['deflate', deflateSync],
    ] as const) {
      it(`decompresses a ${coding} JSON body`, async () => {
        const answer = await infer('classifier', { 'content-encoding': coding, 'content-type': 'application/json' }, compress(json(classify)));
        assert.equal(answer.status, 200, answer.error);
        assertLabel2(answer.bytes.toString('utf8'));
      });

      it(`decompresses a ${coding} binary tensor body; Inference-Header-Content-Length counts decompressed bytes`, async () => {
        const { body, jsonLength } = binaryBody(
          { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', parameters: { binary_data_size: 16 } }] },
          Buffer.from(Float32Array.from(SAMPLE).buffer),
        );
        const answer = await infer('classifier', { 'content-encoding': coding, 'inference-header-content-length': jsonLength }, compress(body));
        assert.equal(answer.status, 200, answer.error);
        assertLabel2(answer.bytes.toString('utf8'));
      });
    }

    it('refuses data that is not what Content-Encoding says with 400', async () => {
      const answer = await infer('classifier', { 'content-encoding': 'gzip', 'content-type': 'application/json' }, json(classify));
      assert.equal(answer.status, 400);
      assert.match(answer.error!, /^the body is not valid gzip data \(Content-Encoding: gzip\): /);
    });

    it('refuses an unknown coding with 415, answering the codings it reads', async () => {
      const answer = await infer('classifier', { 'content-encoding': 'br', 'content-type': 'application/json' }, json(classify));
      assert.equal(answer.status, 415);
      assert.equal(answer.error, "Content-Encoding 'br' is not supported: send the body as it is (identity), gzip or deflate");
      assert.equal(answer.headers['accept-encoding'], 'gzip, deflate');
    });

    it('holds a decompressed body to MAX_REQUEST_BYTES: 413', async () => {
      const bomb = gzipSync(Buffer.concat([json(classify).subarray(0, -2), Buffer.alloc(MAX_REQUEST_BYTES, 0x20), Buffer.from(']}')]));
      assert.ok(bomb.length < MAX_REQUEST_BYTES / 10, `${bomb.length} bytes sent`);
      const answer = await infer('classifier', { 'content-encoding': 'gzip' }, bomb);
      assert.equal(answer.status, 413);
      assert.equal(answer.error, `decompressed (Content-Encoding: gzip), the request body is larger than the limit of ${MAX_REQUEST_BYTES} bytes (MAX_REQUEST_BYTES)`);
    });

    it('stops a decompression bomb while it arrives: the 413 comes before the rest of the body is sent', async () => {
      // A gigabyte of zeros, of which only the first part is sent: a server that read the whole
      // body before inflating it would wait for the rest (and answer 408).
      const zeros = Buffer.alloc(1 << 20);
      const chunks: Buffer[] = [];
      const gzip = (await import('node:zlib')).createGzip();
      gzip.on('data', (chunk: Buffer) => chunks.push(chunk));
      for (let i = 0; i < 16; i++) gzip.write(zeros);
      await new Promise<void>((resolve) => gzip.flush(() => resolve()));
      const start = Buffer.concat(chunks);
      const announced = MAX_REQUEST_BYTES - 1; // within the limit as sent: only decompressing finds it too large
      assert.ok(start.length < announced, `${start.length} bytes sent of ${announced}`);
      const answer = await rawHttpExchange(server.url, [
        requestHead('POST', '/v2/models/classifier/infer', { 'content-encoding': 'gzip', 'content-length': announced }),
        start,
      ]);
      assert.equal(answer.status, 413, JSON.stringify(answer.body));
      assert.match(answer.body.error, /^decompressed \(Content-Encoding: gzip\), the request body is larger than the limit/);
      gzip.destroy();
    });

    it('serves on after each refusal', async () => {
      const answer = await infer('classifier', { 'content-type': 'application/json' }, json(classify));
      assert.equal(answer.status, 200);
    });
  });

  describe('Accept-Encoding: compressed answers, as Triton sends them', () => {
    it('answers uncompressed without Accept-Encoding, or when it asks for identity or an unknown coding', async () => {
      for (const acceptEncoding of [undefined, 'identity', 'br', 'gzip;q=0']) {
        const answer = await infer('classifier', { 'content-type': 'application/json', ...(acceptEncoding && { 'accept-encoding': acceptEncoding }) }, json(classify));
        assert.equal(answer.status, 200);
        assert.equal(answer.headers['content-encoding'], undefined, String(acceptEncoding));
        assertLabel2(answer.bytes.toString('utf8'));
      }
    });

    for (const [coding, decompress] of [
      ['gzip', gunzipSync],
      ['deflate', inflateSync],
    ] as const) {
      it(`answers JSON compressed with ${coding} when asked (tritonclient's response_compression_algorithm)`, async () => {
        const answer = await infer('classifier', { 'content-type': 'application/json', 'accept-encoding': coding }, json(classify));
        assert.equal(answer.status, 200);
        assert.equal(answer.headers['content-encoding'], coding);
        assert.equal(Number(answer.headers['content-length']), answer.bytes.length);
        assertLabel2(decompress(answer.bytes).toString('utf8'));
      });

      it(`answers binary outputs compressed with ${coding}; Inference-Header-Content-Length counts uncompressed bytes`, async () => {
        const request = { ...classify, outputs: [{ name: 'label', parameters: { binary_data: true } }] };
        const answer = await infer('classifier', { 'content-type': 'application/json', 'accept-encoding': `br, ${coding}` }, json(request));
        assert.equal(answer.status, 200);
        assert.equal(answer.headers['content-encoding'], coding);
        const body = decompress(answer.bytes);
        const jsonLength = Number(answer.headers['inference-header-content-length']);
        const header = JSON.parse(body.subarray(0, jsonLength).toString('utf8')) as { outputs: { name: string; parameters: { binary_data_size: number } }[] };
        assert.deepEqual(header.outputs, [{ name: 'label', datatype: 'INT64', shape: [1], parameters: { binary_data_size: 8 } }]);
        assert.equal(body.subarray(jsonLength).readBigInt64LE(0), 2n);
      });
    }

    it('does not compress an error', async () => {
      const answer = await infer('classifier', { 'content-type': 'application/json', 'accept-encoding': 'gzip' }, json({ inputs: [] }));
      assert.equal(answer.status, 400);
      assert.equal(answer.headers['content-encoding'], undefined);
    });
  });

  describe("rapidjson's bare NaN, Infinity and -Infinity", () => {
    it('reads them in FP32 data, JSON body and binary JSON header alike', async () => {
      const text = '{"inputs":[{"name":"in_fp32","shape":[1,4],"datatype":"FP32","data":[NaN,Infinity,-Infinity,1.5]}]}';
      const answer = await infer('fp32', {}, text);
      assert.equal(answer.status, 200, answer.error);
      assert.deepEqual((JSON.parse(answer.bytes.toString('utf8')) as { outputs: { data: unknown[] }[] }).outputs[0]!.data, ['NaN', 'Infinity', '-Infinity', 1.5]);
      const header = Buffer.from('{"inputs":[{"name":"in_fp32","shape":[1,2],"datatype":"FP32","data":[[NaN, -Infinity]]}],"outputs":[{"name":"out_fp32","parameters":{"binary_data":true}}]}');
      const binary = await infer('fp32', { 'inference-header-content-length': header.length }, header);
      assert.equal(binary.status, 200, binary.error);
      const values = new Float32Array(Uint8Array.from(binary.bytes.subarray(Number(binary.headers['inference-header-content-length']))).buffer);
      assert.ok(Number.isNaN(values[0]));
      assert.equal(values[1], -Infinity);
    });

    it('keeps them invalid JSON anywhere else: 400', async () => {
      const bodies = [
        '{"inputs":[{"name":"in_int64","shape":[1,1],"datatype":"INT64","data":[NaN]}]}',
        '{"parameters":{"priority":Infinity},"inputs":[{"name":"in_fp32","shape":[1,1],"datatype":"FP32","data":[1]}]}',
      ];
      for (const body of bodies) {
        const answer = await infer(body.includes('INT64') ? 'int64' : 'fp32', { 'content-type': 'application/json' }, body);
        assert.equal(answer.status, 400, body);
        assert.match(answer.error!, /not valid JSON: .*the bare tokens NaN, Infinity and -Infinity are accepted only in the data of an FP16, FP32 or FP64 input/);
      }
    });
  });

  describe('64-bit integers as exact JSON digits (tritonclient never sends strings)', () => {
    it('reads INT64 over its full range, ±2^53 included, and answers every digit', async () => {
      const data = [INT64_MIN, INT64_MAX, '9007199254740992', '-9007199254740992', '9007199254740993', '-1'];
      const answer = await infer('int64', {}, `{"inputs":[{"name":"in_int64","shape":[1,${data.length}],"datatype":"INT64","data":[${data.join(',')}]}]}`);
      assert.equal(answer.status, 200, answer.error);
      assert.match(answer.bytes.toString('utf8'), new RegExp(`"data":\\[${data.join(',')}\\]`));
    });

    it('reads UINT64 up to 2^64 - 1', async () => {
      const answer = await infer('uint64', {}, `{"inputs":[{"name":"in_uint64","shape":[1,2],"datatype":"UINT64","data":[${UINT64_MAX},9007199254740993]}]}`);
      assert.equal(answer.status, 200, answer.error);
      assert.match(answer.bytes.toString('utf8'), new RegExp(`"data":\\[${UINT64_MAX},9007199254740993\\]`));
    });

    it('refuses a value out of range quoting the digits sent', async () => {
      const cases: [string, string, string][] = [
        ['int64', 'INT64', '9223372036854775808'],
        ['int64', 'INT64', '-9223372036854775809'],
        ['uint64', 'UINT64', '18446744073709551616'],
        ['uint64', 'UINT64', '-1'],
      ];
      for (const [model, datatype, digits] of cases) {
        const name = `in_${model}`;
        const answer = await infer(model, {}, `{"inputs":[{"name":"${name}","shape":[1,1],"datatype":"${datatype}","data":[${digits}]}]}`);
        assert.equal(answer.status, 400);
        assert.match(answer.error!, new RegExp(`^input '${name}': element 0 is ${digits}, expected an integer from`), answer.error);
      }
    });
  });

  describe('an unknown model', () => {
    it('is 404 before its body is judged, whatever the body', async () => {
      const cases: [string, Record<string, string>, string | Buffer][] = [
        ['empty inputs', { 'content-type': 'application/json' }, '{"inputs": []}'],
        ['no body', {}, ''],
        ['not JSON', { 'content-type': 'application/json' }, '{"inputs": ['],
        ['bad binary framing', { 'inference-header-content-length': '999' }, '{}'],
        ['an unknown coding', { 'content-encoding': 'br' }, 'xx'],
        ['corrupt gzip', { 'content-encoding': 'gzip' }, 'xx'],
        ['bare NaN in parameters', {}, '{"parameters":{"p":NaN},"inputs":[]}'],
      ];
      for (const [what, headers, body] of cases) {
        for (const path of ['/v2/models/nope/infer', '/v2/models/nope/versions/3/infer', '/v2/models/nope/versions/x/infer']) {
          const answer = await send('POST', path, headers, body);
          assert.equal(answer.status, 404, `${what} at ${path}: ${answer.error}`);
          assert.equal(answer.error, "Request for unknown model: 'nope' is not found");
        }
      }
    });

    it('is NOT_FOUND over gRPC before its tensors are judged', async () => {
      await assert.rejects(grpc.infer({ model_name: 'nope', inputs: [] }), (error: ServiceError) => {
        assert.equal(error.code, Status.NOT_FOUND);
        assert.equal(error.details, "Request for unknown model: 'nope' is not found");
        return true;
      });
    });
  });

  describe("Triton's wording, where its clients' examples test for it", () => {
    it('metadata of an unknown model: "Request for unknown model", HTTP and gRPC', async () => {
      const answer = await send('GET', '/v2/models/wrong_model_name', {});
      assert.equal(answer.status, 404);
      assert.equal(answer.error, "Request for unknown model: 'wrong_model_name' is not found");
      await assert.rejects(grpc.unary('ModelMetadata', { name: 'wrong_model_name' }), (error: ServiceError) => {
        assert.equal(error.code, Status.NOT_FOUND);
        assert.equal(error.details, "Request for unknown model: 'wrong_model_name' is not found");
        return true;
      });
    });

    it('a repository load that fails: "failed to load \'<m>\', ..." with the reason, HTTP and gRPC', async () => {
      const unknown = await send('POST', '/v2/repository/models/wrong_model_name/load', admin);
      assert.equal(unknown.status, 404);
      assert.equal(unknown.error, "failed to load 'wrong_model_name', the model repository has no model 'wrong_model_name'");
      const badConfig = await send('POST', '/v2/repository/models/reloadable/load', admin, JSON.stringify({ parameters: { config: '"parameters": {"config": {{"max_batch_size": "16"}}}' } }));
      assert.equal(badConfig.status, 400);
      assert.match(badConfig.error!, /^failed to load 'reloadable', ./);
      await assert.rejects(grpc.unary('RepositoryModelLoad', { model_name: 'wrong_model_name' }, { token: TOKEN }), (error: ServiceError) => {
        assert.equal(error.code, Status.NOT_FOUND);
        assert.equal(error.details, "failed to load 'wrong_model_name', the model repository has no model 'wrong_model_name'");
        return true;
      });
    });
  });
});
