import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseInferJsonExactly } from '../../../../src/infra/http/exact-infer-json.parser.js';
import { parseInferJson, parseInferJsonKeepingDigits, parseJsonBody } from '../../../../src/infra/http/json-body.js';
import { decodeHttpInferRequest } from '../../../../src/infra/http/binary-tensor.codec.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';

/** A JSON body Fastify parsed, decoded as the server decodes it. */
const decodeInferRequest = (body: unknown) => decodeHttpInferRequest(body, undefined, 64).request;

const INT64_MIN = '-9223372036854775808';
const INT64_MAX = '9223372036854775807';
const UINT64_MAX = '18446744073709551615';
const TWO_TO_53 = '9007199254740992';

const parse = (text: string) => parseInferJson(Buffer.from(text, 'utf8'), 64);
const keepingDigits = (text: string) => parseInferJsonKeepingDigits(Buffer.from(text, 'utf8'));
/** The whole HTTP decode of a JSON body's bytes. */
const decodeBytes = (text: string) => decodeHttpInferRequest(Buffer.from(text, 'utf8'), undefined, 64).request;
/** A request with one input, its `data` written as raw JSON text. */
const request = (datatype: string, data: string, extra = '') => `{"inputs":[{"name":"x","shape":[1],"datatype":"${datatype}","data":${data}${extra}}]}`;
const dataOf = (text: string, read = keepingDigits) => (read(text) as { inputs: { data: unknown[] }[] }).inputs[0]!.data;

describe('parseInferJson', () => {
  describe('64-bit integers, as tritonclient writes them (exact digits, never strings)', () => {
    it('reads integers beyond 2^53 in data exactly, over the full INT64 and UINT64 ranges', () => {
      assert.deepEqual(dataOf(request('INT64', `[${INT64_MIN}, ${INT64_MAX}, 9007199254740993, -9007199254740993]`)), [
        BigInt(INT64_MIN),
        BigInt(INT64_MAX),
        9007199254740993n,
        -9007199254740993n,
      ]);
      assert.deepEqual(dataOf(request('UINT64', `[[${UINT64_MAX}], [0]]`)), [[BigInt(UINT64_MAX)], [0]], 'nested data too');
    });

    it('reads ±2^53 itself exactly, and what a double holds as a number', () => {
      assert.deepEqual(dataOf(request('INT64', `[${TWO_TO_53}, -${TWO_TO_53}, 9007199254740991, 1000000000000000, 1.5]`)), [
        BigInt(TWO_TO_53),
        -BigInt(TWO_TO_53),
        9007199254740991,
        1000000000000000,
        1.5,
      ]);
    });

    it('JSON.parse loses their digits: the decoder notices and the HTTP decode reads the text again, keeping them', () => {
      assert.deepEqual(dataOf(request('INT64', `[${INT64_MAX}]`), parse), [9223372036854775807], 'JSON.parse rounds');
      const decoded = decodeBytes(request('INT64', `[${INT64_MAX}, ${TWO_TO_53}, -1]`).replace('"shape":[1]', '"shape":[3]'));
      assert.deepEqual(decoded.inputs[0]!.data, new BigInt64Array([BigInt(INT64_MAX), BigInt(TWO_TO_53), -1n]));
      const unsigned = decodeBytes(request('UINT64', `[[${UINT64_MAX}], [9007199254740993]]`).replace('"shape":[1]', '"shape":[2,1]'));
      assert.deepEqual(unsigned.inputs[0]!.data, new BigUint64Array([BigInt(UINT64_MAX), 9007199254740993n]));
    });

    it('an error quotes the digits sent, not a rounded double', () => {
      assertDomainError(() => decodeBytes(request('INT64', '[9223372036854775808]')), 'INFERENCE.INVALID_DATA', 'element 0 is 9223372036854775808,', `from ${INT64_MIN} to ${INT64_MAX}`);
      assertDomainError(() => decodeBytes(request('UINT64', '[18446744073709551617]')), 'INFERENCE.INVALID_DATA', 'element 0 is 18446744073709551617,');
      assertDomainError(() => decodeBytes(request('INT32', '[12345678901234567891]')), 'INFERENCE.INVALID_DATA', 'element 0 is 12345678901234567891,', 'from -2147483648 to 2147483647');
      assertDomainError(() => decodeBytes(request('BOOL', '[12345678901234567891]')), 'INFERENCE.INVALID_DATA', 'element 0 is 12345678901234567891,', 'true or false');
      assertDomainError(() => decodeBytes(request('INT64', '[1.5e30]')), 'INFERENCE.INVALID_DATA', 'element 0 is 1.5e+30,'); // a double past 2^53 is shown as one, never as digits
    });

    it('without the text, refuses a double past 2^53 as one, naming the element', () => {
      assertDomainError(() => decodeInferRequest(JSON.parse(request('INT64', '[9223372036854775807]'))), 'INFERENCE.INVALID_DATA', 'element 0 is 9.223372036854776e+18,', 'exact digits');
    });

    it('reads a long integer outside data as JSON.parse does (the nearest double)', () => {
      const body = keepingDigits('{"id":"a","parameters":{"sequence_id":12345678901234567891},"inputs":[{"name":"x","shape":[1,9007199254740993],"datatype":"INT64","data":[1]}]}') as any;
      assert.equal(body.parameters.sequence_id, 12345678901234567891);
      assert.deepEqual(body.inputs[0].shape, [1, 9007199254740992]);
    });
  });

  describe("NaN and infinities, as rapidjson writes them (bare tokens)", () => {
    for (const datatype of ['FP16', 'FP32', 'FP64']) {
      it(`reads NaN, Infinity and -Infinity in the data of an ${datatype} input`, () => {
        const data = dataOf(request(datatype, '[NaN, Infinity, -Infinity, -1.5]'), parse) as number[];
        assert.ok(Number.isNaN(data[0]));
        assert.deepEqual(data.slice(1, 4), [Infinity, -Infinity, -1.5]);
      });
    }

    it('decodes them into an FP32 tensor, beside the strings JSON clients send', () => {
      const decoded = decodeBytes(request('FP32', '[[NaN, "NaN"], [Infinity, -Infinity]]').replace('"shape":[1]', '"shape":[2,2]'));
      const data = [...(decoded.inputs[0]!.data as Float32Array)];
      assert.ok(Number.isNaN(data[0]) && Number.isNaN(data[1]));
      assert.deepEqual(data.slice(2), [Infinity, -Infinity]);
    });

    it('reads them whichever comes first in the input, datatype or data', () => {
      const text = '{"inputs":[{"data":[NaN],"name":"x","shape":[1],"datatype":"FP64"},{"name":"y","shape":[1],"datatype":"FP32","data":[Infinity]}]}';
      const body = parse(text) as any;
      assert.ok(Number.isNaN(body.inputs[0].data[0]));
      assert.equal(body.inputs[1].data[0], Infinity);
    });

    it('refuses them as invalid JSON in the data of any other datatype, naming where', () => {
      for (const [datatype, token] of [['INT32', 'NaN'], ['INT64', 'Infinity'], ['BOOL', '-Infinity'], ['BYTES', 'NaN']]) {
        const text = request(datatype!, `[1, ${token}]`);
        assert.throws(() => parse(text), (error: Error) => {
          assert.ok(error instanceof SyntaxError, String(error));
          assert.match(error.message, new RegExp(`^${token} at position ${text.indexOf(`${token}]`)} is not JSON: .*only in the data of an FP16, FP32 or FP64 input`));
          return true;
        });
      }
      assert.throws(() => parse('{"inputs":[{"name":"x","shape":[1],"data":[NaN]}]}'), /NaN at position \d+ is not JSON/, 'an input without a datatype');
    });

    it('refuses them as invalid JSON anywhere else', () => {
      for (const text of [
        '{"parameters":{"p":NaN},"inputs":[]}',
        '{"inputs":[{"name":"x","shape":[Infinity],"datatype":"FP32","data":[1]}]}',
        '{"inputs":[],"outputs":[{"name":"y","data":[NaN]}]}',
        '{"data":[NaN]}',
        '[NaN]',
        'NaN',
        '{"inputs":[{"name":"x","datatype":"FP32","data":[{"v":NaN}]}]}',
      ]) {
        assert.throws(() => parse(text), /at position \d+ is not JSON/, text);
      }
    });
  });

  describe('everything else, as JSON.parse reads it', () => {
    const texts = [
      '{"id":"\\u00e9\\"\\\\ \\ud83d\\ude00","inputs":[{"name":"x","shape":[1,2],"datatype":"BYTES","data":["a\\nb","[NaN]"]}],"outputs":[{"name":"y","parameters":{"binary_data":true,"k":-0.5e-3,"n":null}}]}',
      ' \t\r\n{ "inputs" : [ { "name" : "x" , "data" : [ 1.5 , [ -2 ] ] , "datatype" : "FP32" } ] , "x" : [ ] , "y" : { } , "z" : [ true , false , null , 0 , -0 , 1E2 , 0.30000000000000004 ] } \n',
      '{"inputs":[{"name":"x","datatype":"FP32","data":[1]}],"a":{"inputs":[{"data":[12345678901234567890]}]},"inputs2":[{"data":[12345678901234567890]}]}',
      '{"inputs":{"data":[12345678901234567890]},"dup":1,"dup":2}',
      '[{"inputs":[{"data":[12345678901234567890]}]}]',
      '"text"',
      '-0.0e+0',
    ];
    for (const text of texts) {
      it(`the exact parser reads ${JSON.stringify(text.slice(0, 50))}... as JSON.parse does`, () => {
        assert.deepEqual(parseInferJsonExactly(text), JSON.parse(text));
      });
    }

    it('skips a byte-order mark, as secure-json-parse does', () => {
      assert.deepEqual(parseInferJsonExactly('\ufeff{"inputs":[]}'), { inputs: [] });
      assert.deepEqual(parse('\ufeff{"inputs":[{"datatype":"FP32","data":[NaN]}]}'), { inputs: [{ datatype: 'FP32', data: [NaN] }] });
    });

    it('the exact parser refuses what JSON refuses, naming the position', () => {
      const cases: [string, RegExp][] = [
        [request('FP32', '[NaN,]'), /unexpected '\]' at position/],
        ['{"inputs":[{"datatype":"FP32","data":[NaN', /unexpected end of the text at position \d+, expected ',' or '\]'/],
        [request('FP32', '[NaN] }'), /unexpected '}' at position/],
        [request('FP32', '[nan]'), /unexpected 'n' at position/],
        [request('FP32', '[+1]'), /unexpected '\+' at position/],
        [request('FP32', '[01]'), /unexpected '1' at position/],
        [request('FP32', '[NaN]', ',"s":"a\u0001b"'), /invalid string at position/],
        [request('FP32', '[NaN]', ',"s":"\\x"'), /invalid string at position/],
        [request('FP32', '[NaN]', ',"s":"abc'), /unexpected end of the text/],
        [request('FP32', '[NaN]', ',s:1'), /expected a string \(an object key\)/],
        [`${request('FP32', '[NaN]')} {}`, /unexpected '\{' at position/],
        [request('INT64', '[9007199254740993, tru]'), /unexpected 't' at position/],
      ];
      for (const [text, message] of cases) assert.throws(() => parseInferJsonExactly(text), (error: Error) => error instanceof SyntaxError && message.test(error.message), text);
    });

    it("refuses prototype poisoning on either path, as Fastify's own parser does", () => {
      assert.throws(() => parse('{"__proto__":{"polluted":1},"inputs":[]}'), /forbidden prototype property/);
      assert.throws(() => parse('{"__proto__":{"polluted":1},"inputs":[{"datatype":"FP32","data":[NaN]}]}'), /forbidden prototype property/);
      assert.throws(() => parse('{"constructor":{"prototype":{"polluted":1}},"inputs":[{"datatype":"INT64","data":[9007199254740993]}]}'), /forbidden prototype property/);
      assert.throws(() => keepingDigits('{"constructor":{"prototype":{"polluted":1}},"inputs":[{"datatype":"INT64","data":[9007199254740993]}]}'), /forbidden prototype property/);
      assert.throws(() => keepingDigits('{"__proto__":{"polluted":1},"inputs":[]}'), /forbidden prototype property/);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });

    it('checks the depth first, on either path', () => {
      assertDomainError(() => parseInferJson(Buffer.from(request('FP32', '[[[[NaN]]]]')), 5), 'INFERENCE.INVALID_REQUEST', 'MAX_JSON_DEPTH (5 levels)');
    });
  });
});

describe('parseJsonBody', () => {
  it('reads JSON, and an empty body as undefined', () => {
    assert.deepEqual(parseJsonBody(Buffer.from('{"ready":true}'), 64), { ready: true });
    assert.equal(parseJsonBody(Buffer.alloc(0), 64), undefined);
  });

  it('keeps NaN invalid, and refuses bad JSON, depth and prototype poisoning with a 400 naming why', () => {
    assertDomainError(() => parseJsonBody(Buffer.from('{"a":NaN}'), 64), 'INFERENCE.INVALID_REQUEST', 'the body is not valid JSON');
    assertDomainError(() => parseJsonBody(Buffer.from('{"a":'), 64), 'INFERENCE.INVALID_REQUEST', 'the body is not valid JSON');
    assertDomainError(() => parseJsonBody(Buffer.from('[[[1]]]'), 2), 'INFERENCE.INVALID_REQUEST', 'MAX_JSON_DEPTH (2 levels)');
    assertDomainError(() => parseJsonBody(Buffer.from('{"__proto__":{}}'), 64), 'INFERENCE.INVALID_REQUEST', 'forbidden prototype property');
  });
});
