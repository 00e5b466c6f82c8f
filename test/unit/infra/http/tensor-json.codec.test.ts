import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeHttpInferRequest } from '../../../../src/infra/http/binary-tensor.codec.js';
import { decodeTensor, encodeInferResponse } from '../../../../src/infra/http/tensor-json.codec.js';
import type { InferenceResponse } from '../../../../src/domain/inference/inference-request.js';
import type { Tensor } from '../../../../src/domain/inference/tensor.js';
import type { Datatype, TensorData } from '../../../../src/domain/shared/datatype.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';

/** A JSON body Fastify parsed, decoded as the server decodes it. */
const decodeInferRequest = (body: unknown) => decodeHttpInferRequest(body, undefined, 64).request;

const INT64_MAX = '9223372036854775807';
const INT64_MIN = '-9223372036854775808';
const UINT64_MAX = '18446744073709551615';
/** 2^53 + 1: the first integer a double cannot hold. */
const BEYOND_DOUBLE = '9007199254740993';

/** Decodes a flat tensor named 'x' of shape [data.length]. */
function decode(datatype: string, data: unknown[]): TensorData {
  return decodeTensor('x', datatype, [data.length], data).data;
}

function assertRefused(datatype: string, data: unknown[], ...mentions: string[]): void {
  assertDomainError(() => decode(datatype, data), 'INFERENCE.INVALID_DATA', "input 'x'", datatype, ...mentions);
}

/** An inference response carrying the given outputs, as JSON.parse reads the encoded text. */
function encodeAndParse(...outputs: Tensor[]): { outputs: { name: string; datatype: string; shape: number[]; data: unknown[] }[] } {
  return JSON.parse(encodeInferResponse(response(outputs)));
}

function response(outputs: Tensor[]): InferenceResponse {
  return { modelName: 'resnet', modelVersion: '2', parameters: {}, outputs };
}

function tensor(datatype: Datatype, data: TensorData, shape = [data.length]): Tensor {
  return { name: 'y', datatype, shape, data };
}

describe('decoding a JSON infer request', () => {
  it('maps the envelope: id, parameters, inputs and the requested output names', () => {
    const request = decodeInferRequest({
      id: 'req-1',
      parameters: { priority: 1, timeout: 5000 },
      inputs: [{ name: 'image', shape: [1, 2], datatype: 'FP32', data: [0.5, 1.5] }],
      outputs: [{ name: 'scores' }, { name: 'label', parameters: { classification: 2 } }],
    });
    assert.equal(request.id, 'req-1');
    assert.deepEqual(request.parameters, { priority: 1, timeout: 5000 });
    assert.deepEqual(request.inputs, [{ name: 'image', datatype: 'FP32', shape: [1, 2], data: new Float32Array([0.5, 1.5]) }]);
    assert.deepEqual(request.requestedOutputs, ['scores', 'label']);
  });

  it('defaults to no parameters and every output', () => {
    const request = decodeInferRequest({ inputs: [{ name: 'x', shape: [1], datatype: 'INT32', data: [7] }] });
    assert.equal(request.id, undefined);
    assert.deepEqual(request.parameters, {});
    assert.deepEqual(request.requestedOutputs, []);
  });

  it('reads nested data row-major, the same as flat data', () => {
    const flat = decodeInferRequest({ inputs: [{ name: 'x', shape: [2, 3], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6] }] });
    const nested = decodeInferRequest({ inputs: [{ name: 'x', shape: [2, 3], datatype: 'FP32', data: [[1, 2, 3], [4, 5, 6]] }] });
    assert.deepEqual(nested.inputs[0].data, new Float32Array([1, 2, 3, 4, 5, 6]));
    assert.deepEqual(nested.inputs[0].data, flat.inputs[0].data);
  });

  it('reads data nested more than one level deep', () => {
    assert.deepEqual(decodeTensor('x', 'INT8', [2, 2, 1], [[[1], [2]], [[3], [4]]]).data, new Int8Array([1, 2, 3, 4]));
  });

  it('names the input whose element is wrong', () => {
    assertDomainError(
      () => decodeInferRequest({ inputs: [{ name: 'ok', shape: [1], datatype: 'INT32', data: [1] }, { name: 'ids', shape: [2], datatype: 'INT32', data: [1, 'two'] }] }),
      'INFERENCE.INVALID_DATA',
      "input 'ids'",
      'element 1',
      '"two"',
    );
  });

  describe('a malformed envelope', () => {
    for (const [label, body] of [['a string', 'inputs'], ['null', null], ['an array', [{ name: 'x' }]], ['a number', 42]] as const) {
      it(`refuses a body that is ${label}`, () => {
        assertDomainError(() => decodeInferRequest(body), 'INFERENCE.INVALID_REQUEST', 'JSON object', '"inputs"');
      });
    }

    it('refuses a body without inputs', () => {
      assertDomainError(() => decodeInferRequest({ id: 'a' }), 'INFERENCE.INVALID_REQUEST', 'inputs');
    });

    it('refuses an empty inputs list', () => {
      assertDomainError(() => decodeInferRequest({ inputs: [] }), 'INFERENCE.INVALID_REQUEST', 'inputs');
    });

    it('refuses a shape holding a string, naming the input and the field', () => {
      assertDomainError(
        () => decodeInferRequest({ inputs: [{ name: 'image', shape: [1, '3'], datatype: 'FP32', data: [1, 2, 3] }] }),
        'INFERENCE.INVALID_REQUEST',
        "input 'image'",
        'inputs[0].shape[1]',
      );
    });

    it('refuses a negative dimension in a shape', () => {
      assertDomainError(
        () => decodeInferRequest({ inputs: [{ name: 'image', shape: [-1], datatype: 'FP32', data: [] }] }),
        'INFERENCE.INVALID_REQUEST',
        "input 'image'",
        'inputs[0].shape[0]',
      );
    });

    it('refuses an input without data', () => {
      assertDomainError(() => decodeInferRequest({ inputs: [{ name: 'image', shape: [1], datatype: 'FP32' }] }), 'INFERENCE.INVALID_REQUEST', "input 'image'", 'data');
    });

    it('refuses a requested output without a name', () => {
      assertDomainError(
        () => decodeInferRequest({ inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }], outputs: [{}] }),
        'INFERENCE.INVALID_REQUEST',
        'outputs[0].name',
      );
    });
  });
});

describe('decodeTensor', () => {
  it('keeps the name, datatype and shape', () => {
    const decoded = decodeTensor('ids', 'INT32', [1, 2], [[1, 2]]);
    assert.equal(decoded.name, 'ids');
    assert.equal(decoded.datatype, 'INT32');
    assert.deepEqual(decoded.shape, [1, 2]);
  });

  it('refuses an unknown datatype, naming the input and the datatype', () => {
    assertDomainError(() => decodeTensor('image', 'FLOAT32', [1], [1]), 'INFERENCE.INVALID_DATATYPE', "input 'image'", "'FLOAT32'", 'FP32');
    assertDomainError(() => decodeTensor('image', 'BF16', [1], [1]), 'INFERENCE.INVALID_DATATYPE', "'BF16'");
  });

  describe('BOOL', () => {
    it('holds one byte per element, 1 or 0', () => {
      assert.deepEqual(decode('BOOL', [true, false, true]), new Uint8Array([1, 0, 1]));
    });

    it('refuses numbers and strings', () => {
      assertRefused('BOOL', [true, 1], 'element 1', 'true or false');
      assertRefused('BOOL', ['true'], 'element 0');
    });
  });

  describe('integers that fit a number', () => {
    const extremes: [Datatype, number, number, (values: number[]) => TensorData][] = [
      ['UINT8', 0, 255, (values) => Uint8Array.from(values)],
      ['INT8', -128, 127, (values) => Int8Array.from(values)],
      ['UINT16', 0, 65535, (values) => Uint16Array.from(values)],
      ['INT16', -32768, 32767, (values) => Int16Array.from(values)],
      ['UINT32', 0, 4294967295, (values) => Uint32Array.from(values)],
      ['INT32', -2147483648, 2147483647, (values) => Int32Array.from(values)],
    ];
    for (const [datatype, min, max, typed] of extremes) {
      it(`${datatype} holds its extremes ${min} and ${max} in its typed array`, () => {
        assert.deepEqual(decode(datatype, [min, max]), typed([min, max]));
      });

      it(`${datatype} refuses ${min - 1} and ${max + 1}, naming the range`, () => {
        assertRefused(datatype, [min - 1], 'element 0', `from ${min} to ${max}`);
        assertRefused(datatype, [0, max + 1], 'element 1', `from ${min} to ${max}`);
      });
    }

    it('refuses a non-integer', () => {
      assertRefused('INT32', [1, 2.5], 'element 1', '2.5');
    });

    it('refuses a numeric string, null and a nested value in a flat list', () => {
      assertRefused('INT32', ['7'], 'element 0', '"7"');
      assertRefused('UINT8', [null], 'element 0', 'null');
      assertRefused('INT16', [1, [2]], 'element 1');
    });
  });

  describe('INT64 and UINT64', () => {
    it('INT64 reads JSON numbers up to 2^53 - 1 into a BigInt64Array', () => {
      assert.deepEqual(decode('INT64', [-5, 0, Number.MAX_SAFE_INTEGER]), new BigInt64Array([-5n, 0n, 9007199254740991n]));
    });

    it('INT64 reads decimal strings exactly beyond 2^53, up to its extremes', () => {
      assert.deepEqual(decode('INT64', [BEYOND_DOUBLE, INT64_MIN, INT64_MAX]), new BigInt64Array([BigInt(BEYOND_DOUBLE), BigInt(INT64_MIN), BigInt(INT64_MAX)]));
    });

    it('UINT64 reads numbers and decimal strings up to 2^64 - 1 into a BigUint64Array', () => {
      assert.deepEqual(decode('UINT64', [0, 42, BEYOND_DOUBLE, UINT64_MAX]), new BigUint64Array([0n, 42n, BigInt(BEYOND_DOUBLE), BigInt(UINT64_MAX)]));
    });

    it('refuses a JSON number beyond 2^53, which has already lost its digits', () => {
      assertRefused('INT64', [2 ** 53], 'element 0', 'decimal string');
      assertRefused('INT64', [9007199254740993], 'element 0');
    });

    it('refuses values outside the range, naming it', () => {
      assertRefused('INT64', ['9223372036854775808'], `from ${INT64_MIN} to ${INT64_MAX}`);
      assertRefused('INT64', ['-9223372036854775809'], `from ${INT64_MIN} to ${INT64_MAX}`);
      assertRefused('UINT64', ['18446744073709551616'], `from 0 to ${UINT64_MAX}`);
      assertRefused('UINT64', [-1], `from 0 to ${UINT64_MAX}`);
    });

    it('refuses non-integers and strings that are not decimal integers', () => {
      assertRefused('INT64', [1.5], 'element 0');
      assertRefused('INT64', ['1e3'], 'element 0', '"1e3"');
      assertRefused('INT64', ['12abc'], 'element 0');
      assertRefused('UINT64', [' 1'], 'element 0');
      assertRefused('INT64', [true], 'element 0');
    });
  });

  describe('floats', () => {
    it('FP32 holds the nearest float32', () => {
      assert.deepEqual(decode('FP32', [0.1, -2, 3.5e38]), new Float32Array([0.1, -2, 3.5e38]));
      assert.equal((decode('FP32', [0.1]) as Float32Array)[0], Math.fround(0.1));
    });

    it('FP64 holds the double exactly', () => {
      assert.deepEqual(decode('FP64', [0.1, Number.MIN_VALUE, Number.MAX_VALUE]), new Float64Array([0.1, Number.MIN_VALUE, Number.MAX_VALUE]));
    });

    it('FP16 holds the half-precision bits', () => {
      assert.deepEqual(decode('FP16', [1, -2, 0.5, 65504]), new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff]));
    });

    for (const datatype of ['FP32', 'FP64'] as const) {
      it(`${datatype} reads "NaN", "Infinity" and "-Infinity"`, () => {
        const [nan, inf, negInf] = decode(datatype, ['NaN', 'Infinity', '-Infinity']) as Float32Array | Float64Array;
        assert.ok(Number.isNaN(nan));
        assert.equal(inf, Infinity);
        assert.equal(negInf, -Infinity);
      });
    }

    it('FP16 reads "NaN", "Infinity" and "-Infinity" as their half bits', () => {
      const [nan, inf, negInf] = decode('FP16', ['NaN', 'Infinity', '-Infinity']) as Uint16Array;
      assert.equal(nan & 0x7c00, 0x7c00);
      assert.notEqual(nan & 0x3ff, 0);
      assert.equal(inf, 0x7c00);
      assert.equal(negInf, 0xfc00);
    });

    it('refuses other strings, booleans and null', () => {
      assertRefused('FP32', ['1.5'], 'element 0', '"1.5"', 'a number');
      assertRefused('FP64', [1, 'nan'], 'element 1');
      assertRefused('FP16', [false], 'element 0');
      assertRefused('FP32', [null], 'element 0');
    });
  });

  describe('BYTES', () => {
    it('holds one string per element, including the empty string and a NUL character', () => {
      assert.deepEqual(decode('BYTES', ['hello', '', 'a\u0000b', 'é']), ['hello', '', 'a\u0000b', 'é']);
    });

    it('reads nested strings row-major', () => {
      assert.deepEqual(decodeTensor('x', 'BYTES', [2, 1], [['a'], ['b']]).data, ['a', 'b']);
    });

    it('refuses elements that are not strings', () => {
      assertRefused('BYTES', ['a', 5], 'element 1', 'a string');
      assertRefused('BYTES', [null], 'element 0');
    });
  });
});

describe('encodeInferResponse', () => {
  it('writes the envelope in the KServe V2 form', () => {
    const text = encodeInferResponse({
      modelName: 'resnet',
      modelVersion: '2',
      id: 'req-1',
      parameters: { sequence_end: true },
      outputs: [tensor('INT32', new Int32Array([1, 2, 3, 4]), [2, 2])],
    });
    assert.deepEqual(JSON.parse(text), {
      model_name: 'resnet',
      model_version: '2',
      id: 'req-1',
      parameters: { sequence_end: true },
      outputs: [{ name: 'y', datatype: 'INT32', shape: [2, 2], data: [1, 2, 3, 4] }],
    });
  });

  it('leaves out the id when the request had none', () => {
    assert.equal('id' in encodeAndParse(), false);
  });

  it('escapes names and ids that need it', () => {
    const text = encodeInferResponse({ modelName: 'a"b', modelVersion: '1', id: 'line\nbreak', parameters: {}, outputs: [{ ...tensor('INT8', new Int8Array([1])), name: 'out\\put' }] });
    const parsed = JSON.parse(text);
    assert.equal(parsed.model_name, 'a"b');
    assert.equal(parsed.id, 'line\nbreak');
    assert.equal(parsed.outputs[0].name, 'out\\put');
  });

  it('writes every digit of INT64 and UINT64 values', () => {
    const text = encodeInferResponse(
      response([tensor('INT64', new BigInt64Array([BigInt(INT64_MAX), BigInt(INT64_MIN), BigInt(BEYOND_DOUBLE)])), tensor('UINT64', new BigUint64Array([BigInt(UINT64_MAX)]))]),
    );
    assert.ok(text.includes(`[${INT64_MAX},${INT64_MIN},${BEYOND_DOUBLE}]`), text);
    assert.ok(text.includes(`[${UINT64_MAX}]`), text);
    assert.doesNotThrow(() => JSON.parse(text));
  });

  it('writes BOOL as true and false', () => {
    assert.deepEqual(encodeAndParse(tensor('BOOL', new Uint8Array([1, 0, 1]))).outputs[0].data, [true, false, true]);
  });

  it('writes BYTES as strings, including the empty string and a NUL character', () => {
    assert.deepEqual(encodeAndParse(tensor('BYTES', ['hello', '', 'a\u0000b'])).outputs[0].data, ['hello', '', 'a\u0000b']);
  });

  it('writes FP16 bits as the numbers they stand for', () => {
    assert.deepEqual(encodeAndParse(tensor('FP16', new Uint16Array([0x3c00, 0xc000, 0x0001]))).outputs[0].data, [1, -2, 2 ** -24]);
  });

  for (const [datatype, data] of [
    ['FP32', new Float32Array([NaN, Infinity, -Infinity, 1])],
    ['FP64', new Float64Array([NaN, Infinity, -Infinity, 1])],
    ['FP16', new Uint16Array([0x7e00, 0x7c00, 0xfc00, 0x3c00])],
  ] as const) {
    it(`writes ${datatype} NaN and infinities as strings, so the response stays valid JSON`, () => {
      assert.deepEqual(encodeAndParse(tensor(datatype, data)).outputs[0].data, ['NaN', 'Infinity', '-Infinity', 1]);
    });
  }

  it('writes a float32 so that it parses back to the same float32', () => {
    const values = new Float32Array([0.1, 1 / 3, -123.456, 3.4028234663852886e38, 1.401298464324817e-45, 16777217]);
    const parsed = encodeAndParse(tensor('FP32', values)).outputs[0].data as number[];
    assert.deepEqual(parsed.map(Math.fround), Array.from(values));
  });

  it('writes a float64 exactly', () => {
    const values = [0.1, Math.PI, Number.MIN_VALUE, -Number.MAX_VALUE];
    assert.deepEqual(encodeAndParse(tensor('FP64', new Float64Array(values))).outputs[0].data, values);
  });

  it('keeps the sign of a negative zero', () => {
    const [zero] = encodeAndParse(tensor('FP32', new Float32Array([-0]))).outputs[0].data as number[];
    assert.ok(Object.is(zero, -0), `expected -0, got ${zero}`);
  });

  it('what it writes decodes back to the same tensor, special values included', () => {
    const original = new Float32Array([NaN, -Infinity, 0.1, 65504]);
    const [output] = encodeAndParse(tensor('FP32', original)).outputs;
    const decoded = decodeTensor(output.name, output.datatype, output.shape, output.data).data as Float32Array;
    assert.deepEqual(Array.from(decoded), Array.from(original));
  });
});
