import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { InferenceResponse } from '../../../../src/domain/inference/inference-request.js';
import type { Tensor } from '../../../../src/domain/inference/tensor.js';
import { decodeModelInferRequest, decodeParameters, encodeModelInferResponse, encodeParameters } from '../../../../src/infra/grpc/infer-message.codec.js';
import type { InputTensorMessage, ModelInferRequestMessage } from '../../../../src/infra/grpc/inference-messages.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';

function request(inputs: InputTensorMessage[], extra: Partial<ModelInferRequestMessage> = {}): ModelInferRequestMessage {
  return { model_name: 'm', inputs, outputs: [], raw_input_contents: [], ...extra };
}

const le = (array: ArrayBufferView) => Buffer.from(array.buffer, array.byteOffset, array.byteLength);

function rawBytes(...elements: (string | Buffer)[]): Buffer {
  return Buffer.concat(
    elements.flatMap((element) => {
      const bytes = typeof element === 'string' ? Buffer.from(element, 'utf8') : element;
      const length = Buffer.alloc(4);
      length.writeUInt32LE(bytes.length);
      return [length, bytes];
    }),
  );
}

function response(outputs: Tensor[]): InferenceResponse {
  return { modelName: 'm', modelVersion: '3', id: 'r1', parameters: { queue_time_us: 12, batch_size: 2 }, outputs };
}

describe('decodeModelInferRequest', () => {
  it('reads typed contents of each datatype into the domain arrays', () => {
    const decoded = decodeModelInferRequest(
      request([
        { name: 'b', datatype: 'BOOL', shape: ['3'], contents: { bool_contents: [true, false, true] } },
        { name: 'i8', datatype: 'INT8', shape: ['2'], contents: { int_contents: [-128, 127] } },
        { name: 'u16', datatype: 'UINT16', shape: ['1'], contents: { uint_contents: [65535] } },
        { name: 'i64', datatype: 'INT64', shape: ['2'], contents: { int64_contents: ['-9223372036854775808', '9223372036854775807'] } },
        { name: 'u64', datatype: 'UINT64', shape: ['1'], contents: { uint64_contents: ['18446744073709551615'] } },
        { name: 'f32', datatype: 'FP32', shape: ['2'], contents: { fp32_contents: [1.5, NaN] } },
        { name: 'f64', datatype: 'FP64', shape: ['1'], contents: { fp64_contents: [1e-300] } },
        { name: 's', datatype: 'BYTES', shape: ['2'], contents: { bytes_contents: [Buffer.from(''), Buffer.from('héllo')] } },
      ]),
    );
    const [b, i8, u16, i64, u64, f32, f64, s] = decoded.request.inputs.map((input) => input.data);
    assert.deepEqual(b, Uint8Array.of(1, 0, 1));
    assert.deepEqual(i8, Int8Array.of(-128, 127));
    assert.deepEqual(u16, Uint16Array.of(65535));
    assert.deepEqual(i64, BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n));
    assert.deepEqual(u64, BigUint64Array.of(2n ** 64n - 1n));
    assert.deepEqual(f32, Float32Array.of(1.5, NaN));
    assert.deepEqual(f64, Float64Array.of(1e-300));
    assert.deepEqual(s, ['', 'héllo']);
    assert.equal(decoded.responseForm, 'raw', "typed contents are answered raw, as Triton does (NVIDIA's grpc_explicit_*_content_client examples read raw_output_contents)");
    assert.deepEqual(decoded.request.inputs[0].shape, [3]);
  });

  it('reads raw contents, little-endian, as copies that own their buffers', () => {
    const message = Buffer.alloc(3 + 8);
    le(Float32Array.of(0.25, -2)).copy(message, 3); // unaligned inside a larger buffer, as in a decoded message
    const raw = message.subarray(3);
    const decoded = decodeModelInferRequest(
      request([{ name: 'x', datatype: 'FP32', shape: ['1', '2'] }, { name: 'h', datatype: 'FP16', shape: ['1'] }, { name: 's', datatype: 'BYTES', shape: ['3'] }], {
        raw_input_contents: [raw, le(Uint16Array.of(0x3c00)), rawBytes('', 'a\u00e9', Buffer.from([0x7a]))],
      }),
    );
    const [x, h, s] = decoded.request.inputs.map((input) => input.data);
    assert.deepEqual(x, Float32Array.of(0.25, -2));
    assert.equal((x as Float32Array).buffer.byteLength, 8, 'a buffer of its own, not a view of the message');
    assert.deepEqual(h, Uint16Array.of(0x3c00));
    assert.deepEqual(s, ['', 'aé', 'z']);
    assert.equal(decoded.responseForm, 'raw');
  });

  it('decodes a raw_input_contents entry as a view of the message where it is aligned, and as a copy where it is not', () => {
    const message = Buffer.alloc(24); // the received message: the entries are slices of it
    le(Float32Array.of(2.5, 4)).copy(message, 4);
    le(Float32Array.of(2.5, 4)).copy(message, 13);
    const decoded = (entry: Buffer) =>
      decodeModelInferRequest(request([{ name: 'x', datatype: 'FP32', shape: ['2'] }], { raw_input_contents: [entry] })).request.inputs[0]!.data as Float32Array;
    const aligned = decoded(message.subarray(4, 12));
    assert.deepEqual([...aligned], [2.5, 4]);
    assert.equal(aligned.buffer, message.buffer, 'a view of the message: no copy');
    const unaligned = decoded(message.subarray(13, 21));
    assert.deepEqual([...unaligned], [2.5, 4]);
    assert.notEqual(unaligned.buffer, message.buffer, 'an unaligned entry is copied');
  });

  it('answers raw unless binary_data_output is false, which asks for typed contents, whatever the form of the request', () => {
    const typed = request([{ name: 'x', datatype: 'FP32', shape: ['1'], contents: { fp32_contents: [1] } }]);
    const raw = request([{ name: 'x', datatype: 'FP32', shape: ['1'] }], { raw_input_contents: [le(Float32Array.of(1))] });
    const binaryDataOutput = (value: boolean) => ({ binary_data_output: { parameter_choice: 'bool_param' as const, bool_param: value } });
    assert.equal(decodeModelInferRequest(typed).responseForm, 'raw');
    assert.equal(decodeModelInferRequest(raw).responseForm, 'raw');
    assert.equal(decodeModelInferRequest({ ...typed, parameters: binaryDataOutput(true) }).responseForm, 'raw');
    assert.equal(decodeModelInferRequest({ ...typed, parameters: binaryDataOutput(false) }).responseForm, 'typed');
    assert.equal(decodeModelInferRequest({ ...raw, parameters: binaryDataOutput(false) }).responseForm, 'typed');
    assertDomainError(
      () => decodeModelInferRequest({ ...raw, parameters: { binary_data_output: { parameter_choice: 'string_param', string_param: 'yes' } } }),
      'INFERENCE.INVALID_REQUEST',
      'binary_data_output',
    );
  });

  it("reads each requested output's classification parameter as its number of classes", () => {
    const decoded = decodeModelInferRequest(
      request([{ name: 'x', datatype: 'FP32', shape: ['1'], contents: { fp32_contents: [1] } }], {
        outputs: [
          { name: 'scores', parameters: { classification: { parameter_choice: 'int64_param', int64_param: '3' } } },
          { name: 'plain', parameters: {} },
          { name: 'other' },
        ],
      }),
    );
    assert.deepEqual(decoded.request.requestedOutputs, ['scores', 'plain', 'other']);
    assert.deepEqual(decoded.request.classifications, new Map([['scores', 3]]));
    const none = decodeModelInferRequest(request([{ name: 'x', datatype: 'FP32', shape: ['1'], contents: { fp32_contents: [1] } }], { outputs: [{ name: 'y' }] }));
    assert.equal(none.request.classifications, undefined);
  });

  it('keeps the id, the version and the outputs asked for', () => {
    const decoded = decodeModelInferRequest(
      request([{ name: 'x', datatype: 'FP32', shape: ['1'], contents: { fp32_contents: [1] } }], { id: 'abc', model_version: '2', outputs: [{ name: 'y' }] }),
    );
    assert.equal(decoded.request.id, 'abc');
    assert.equal(decoded.modelVersion, '2');
    assert.deepEqual(decoded.request.requestedOutputs, ['y']);
    const bare = decodeModelInferRequest(request([{ name: 'x', datatype: 'FP32', shape: ['1'], contents: { fp32_contents: [1] } }], { id: '', model_version: '' }));
    assert.equal(bare.request.id, undefined);
    assert.equal(bare.modelVersion, undefined);
  });

  const refusals: [string, ModelInferRequestMessage, string, ...string[]][] = [
    ['no model name', request([{ name: 'x', datatype: 'FP32', shape: ['1'] }], { model_name: '' }), 'INFERENCE.INVALID_REQUEST', 'model_name'],
    ['no inputs', request([]), 'INFERENCE.INVALID_REQUEST', 'no inputs'],
    ['an input without a name', request([{ datatype: 'FP32', shape: ['1'], contents: { fp32_contents: [1] } }]), 'INFERENCE.INVALID_REQUEST', 'input 0 has no name'],
    ['an unknown datatype', request([{ name: 'x', datatype: 'FP8', shape: ['1'] }]), 'INFERENCE.INVALID_DATATYPE', "'x'", "'FP8'"],
    ['typed FP16', request([{ name: 'h', datatype: 'FP16', shape: ['1'], contents: {} }]), 'INFERENCE.INVALID_DATA', "'h'", 'raw_input_contents'],
    [
      'contents in the wrong field',
      request([{ name: 'x', datatype: 'FP32', shape: ['1'], contents: { int_contents: [1] } }]),
      'INFERENCE.INVALID_DATA',
      "'x'",
      'contents.fp32_contents',
      'not contents.int_contents',
    ],
    ['an INT8 out of range', request([{ name: 'x', datatype: 'INT8', shape: ['1'], contents: { int_contents: [128] } }]), 'INFERENCE.INVALID_DATA', "'x'", 'element 0 is 128', '-128 to 127'],
    ['a UINT16 out of range', request([{ name: 'x', datatype: 'UINT16', shape: ['1'], contents: { uint_contents: [70000] } }]), 'INFERENCE.INVALID_DATA', '0 to 65535'],
    [
      'invalid UTF-8 in BYTES',
      request([{ name: 's', datatype: 'BYTES', shape: ['2'], contents: { bytes_contents: [Buffer.from('ok'), Buffer.from([0xc3, 0x28])] } }]),
      'INFERENCE.INVALID_DATA',
      "'s'",
      'element 1',
      'UTF-8',
    ],
    [
      'fewer raw entries than inputs',
      request([{ name: 'a', datatype: 'FP32', shape: ['1'] }, { name: 'b', datatype: 'FP32', shape: ['1'] }], { raw_input_contents: [le(Float32Array.of(1))] }),
      'INFERENCE.INVALID_REQUEST',
      '1 entries',
      '2 inputs',
    ],
    [
      'contents beside raw contents',
      request([{ name: 'a', datatype: 'FP32', shape: ['1'], contents: { fp32_contents: [1] } }], { raw_input_contents: [le(Float32Array.of(1))] }),
      'INFERENCE.INVALID_REQUEST',
      "contents field must not be specified when using raw_input_contents for 'a' for model 'm'",
    ],
    [
      // Triton names the input before counting the raw entries (grpc_explicit_int_content_client looks for it).
      'contents beside fewer raw entries than inputs',
      request(
        [
          { name: 'INPUT0', datatype: 'INT32', shape: ['1'], contents: { int_contents: [1] } },
          { name: 'INPUT1', datatype: 'INT32', shape: ['1'], contents: { int_contents: [1] } },
        ],
        { model_name: 'simple', raw_input_contents: [le(Int32Array.of(1))] },
      ),
      'INFERENCE.INVALID_REQUEST',
      "contents field must not be specified when using raw_input_contents for 'INPUT0' for model 'simple'",
    ],
    ...(
      [
        ['zero', { parameter_choice: 'int64_param', int64_param: '0' }, '0'],
        ['negative', { parameter_choice: 'int64_param', int64_param: '-2' }, '-2'],
        ['a double', { parameter_choice: 'double_param', double_param: 1.5 }, '1.5'],
        ['a string', { parameter_choice: 'string_param', string_param: '3' }, '"3"'],
        ['beyond 2^53', { parameter_choice: 'int64_param', int64_param: '9223372036854775807' }, '"9223372036854775807"'],
      ] as const
    ).map(([what, parameter, shown]): [string, ModelInferRequestMessage, string, ...string[]] => [
      `a classification that is ${what}`,
      request([{ name: 'x', datatype: 'FP32', shape: ['1'], contents: { fp32_contents: [1] } }], { outputs: [{ name: 'scores', parameters: { classification: parameter } }] }),
      'INFERENCE.INVALID_OUTPUT',
      `output 'scores': parameter 'classification' is ${shown}, expected a positive integer`,
    ]),
    [
      'a raw byte count that does not match the shape',
      request([{ name: 'x', datatype: 'FP32', shape: ['1', '3'] }], { raw_input_contents: [le(Float32Array.of(1, 2))] }),
      'INFERENCE.INVALID_DATA',
      "'x'",
      '8 bytes',
      'expected 12',
    ],
    ['a raw byte count not a multiple of the element size', request([{ name: 'x', datatype: 'INT32', shape: ['-1'] }], { raw_input_contents: [Buffer.alloc(5)] }), 'INFERENCE.INVALID_DATA', 'multiple of 4'],
    ['a raw BOOL byte other than 0 or 1', request([{ name: 'b', datatype: 'BOOL', shape: ['2'] }], { raw_input_contents: [Buffer.from([1, 7])] }), 'INFERENCE.INVALID_DATA', "'b'", 'element 1', '0 or 1'],
    [
      'a raw BYTES length prefix cut short',
      request([{ name: 's', datatype: 'BYTES', shape: ['2'] }], { raw_input_contents: [Buffer.concat([rawBytes('ab'), Buffer.from([1, 0])])] }),
      'INFERENCE.INVALID_DATA',
      "'s'",
      'element 1',
      '4-byte length',
    ],
    [
      'a raw BYTES length past the end',
      request([{ name: 's', datatype: 'BYTES', shape: ['1'] }], { raw_input_contents: [rawBytes('abc').subarray(0, 6)] }),
      'INFERENCE.INVALID_DATA',
      'says 3 bytes',
      'only 2 remain',
    ],
    [
      'a parameter without a value',
      request([{ name: 'x', datatype: 'FP32', shape: ['1'], contents: { fp32_contents: [1] } }], { parameters: { priority: {} } }),
      'INFERENCE.INVALID_REQUEST',
      "parameters['priority']",
    ],
  ];
  for (const [what, message, code, ...mentions] of refusals) {
    it(`refuses ${what}, naming it`, () => {
      assertDomainError(() => decodeModelInferRequest(message), code as never, ...mentions);
    });
  }
});

describe('encodeModelInferResponse', () => {
  const outputs: Tensor[] = [
    { name: 'f', datatype: 'FP32', shape: [2], data: Float32Array.of(0.5, Infinity) },
    { name: 'l', datatype: 'INT64', shape: [1], data: BigInt64Array.of(2n ** 63n - 1n) },
    { name: 'b', datatype: 'BOOL', shape: [2], data: Uint8Array.of(0, 1) },
    { name: 's', datatype: 'BYTES', shape: [2], data: ['', 'é'] },
  ];

  it('answers typed contents in the fields of the datatypes', () => {
    const message = encodeModelInferResponse(response(outputs), 'typed');
    assert.deepEqual(message.raw_output_contents, []);
    assert.deepEqual(
      message.outputs.map((o) => o.contents),
      [{ fp32_contents: [0.5, Infinity] }, { int64_contents: ['9223372036854775807'] }, { bool_contents: [false, true] }, { bytes_contents: [Buffer.from(''), Buffer.from('é')] }],
    );
    assert.deepEqual(message.outputs.map((o) => [o.name, o.datatype, o.shape]), [['f', 'FP32', [2]], ['l', 'INT64', [1]], ['b', 'BOOL', [2]], ['s', 'BYTES', [2]]]);
    assert.equal(message.model_name, 'm');
    assert.equal(message.model_version, '3');
    assert.equal(message.id, 'r1');
    assert.deepEqual(message.parameters, { queue_time_us: { int64_param: '12' }, batch_size: { int64_param: '2' } });
  });

  it('answers raw contents, one entry per output in output order, BYTES length-prefixed', () => {
    const message = encodeModelInferResponse(response(outputs), 'raw');
    assert.ok(message.outputs.every((o) => o.contents === undefined));
    assert.deepEqual(message.raw_output_contents, [le(Float32Array.of(0.5, Infinity)), le(BigInt64Array.of(2n ** 63n - 1n)), Buffer.from([0, 1]), rawBytes('', 'é')]);
  });

  it('answers raw when an output is FP16, whatever the request asked', () => {
    const message = encodeModelInferResponse(response([...outputs, { name: 'h', datatype: 'FP16', shape: [1], data: Uint16Array.of(0x3c00) }]), 'typed');
    assert.equal(message.raw_output_contents.length, 5);
    assert.deepEqual(message.raw_output_contents[4], Buffer.from([0x00, 0x3c]));
  });
});

describe('parameters', () => {
  it('reads each oneof choice, with 64-bit integers as numbers when they fit', () => {
    assert.deepEqual(
      decodeParameters(
        {
          a: { parameter_choice: 'bool_param', bool_param: true },
          b: { parameter_choice: 'int64_param', int64_param: '42' },
          c: { parameter_choice: 'string_param', string_param: 'x' },
          d: { parameter_choice: 'double_param', double_param: 0.5 },
          e: { parameter_choice: 'uint64_param', uint64_param: '18446744073709551615' },
        },
        'parameters',
      ),
      { a: true, b: 42, c: 'x', d: 0.5, e: '18446744073709551615' },
    );
  });

  it('writes each value in the field of its kind', () => {
    assert.deepEqual(encodeParameters({ a: true, b: 7, c: 's', d: 0.25 }), {
      a: { bool_param: true },
      b: { int64_param: '7' },
      c: { string_param: 's' },
      d: { double_param: 0.25 },
    });
  });
});

describe('decodeModelInferRequest: shared memory and parameters', () => {
  const reader = (bytes: Buffer) => ({ read: (slice: { offset: number; byteSize: number }) => new Uint8Array(bytes.subarray(slice.offset, slice.offset + slice.byteSize)) });
  const slice = (region: string, size: number, offset = 0) => ({
    shared_memory_region: { parameter_choice: 'string_param' as const, string_param: region },
    shared_memory_byte_size: { parameter_choice: 'int64_param' as const, int64_param: String(size) },
    shared_memory_offset: { parameter_choice: 'int64_param' as const, int64_param: String(offset) },
  });

  it('gives raw_input_contents entries only to inputs outside shared memory, in input order', () => {
    const decoded = decodeModelInferRequest(
      request(
        [
          { name: 'a', datatype: 'INT8', shape: ['1'] },
          { name: 's', datatype: 'BYTES', shape: ['1'], parameters: slice('r', 6, 2) },
          { name: 'b', datatype: 'INT8', shape: ['1'], parameters: { binary_data_size: { parameter_choice: 'int64_param', int64_param: '1' } } },
        ],
        { raw_input_contents: [Buffer.from([1]), Buffer.from([2])], outputs: [{ name: 'y', parameters: slice('o', 8) }] },
      ),
      reader(Buffer.concat([Buffer.alloc(2), rawBytes('hi')])),
    );
    assert.deepEqual(decoded.request.inputs.map((input) => input.data), [Int8Array.of(1), ['hi'], Int8Array.of(2)]);
    assert.deepEqual([...decoded.sharedMemoryOutputs], [['y', { region: 'o', offset: 0, byteSize: 8 }]]);
    assert.equal(decoded.responseForm, 'raw');
  });

  it('refuses parameters it does not act on, contents beside a slice, and a binary_data_size that disagrees', () => {
    const bad = { parameter_choice: 'bool_param' as const, bool_param: true };
    assertDomainError(() => decodeModelInferRequest(request([{ name: 'a', datatype: 'INT8', shape: ['1'], contents: { int_contents: [1] } }], { parameters: { sequence_end: bad } })), 'INFERENCE.INVALID_REQUEST', 'the request', "'sequence_end'");
    assertDomainError(() => decodeModelInferRequest(request([{ name: 'a', datatype: 'INT8', shape: ['1'], parameters: { zero_copy: bad }, contents: { int_contents: [1] } }])), 'INFERENCE.INVALID_REQUEST', "input 'a'", "'zero_copy'");
    assertDomainError(
      () => decodeModelInferRequest(request([{ name: 'a', datatype: 'INT8', shape: ['1'], contents: { int_contents: [1] } }], { outputs: [{ name: 'y', parameters: { binary_data: bad } }] })),
      'INFERENCE.INVALID_REQUEST',
      "output 'y'",
      "'binary_data'",
    );
    assertDomainError(
      () => decodeModelInferRequest(request([{ name: 'a', datatype: 'INT8', shape: ['1'], parameters: slice('r', 1), contents: { int_contents: [1] } }]), reader(Buffer.alloc(1))),
      'INFERENCE.INVALID_REQUEST',
      "'r'",
      'contents',
    );
    assertDomainError(
      () => decodeModelInferRequest(request([{ name: 'a', datatype: 'INT8', shape: ['1'], parameters: { binary_data_size: { parameter_choice: 'int64_param', int64_param: '2' } } }], { raw_input_contents: [Buffer.from([1])] })),
      'INFERENCE.INVALID_REQUEST',
      "input 'a'",
      'binary_data_size',
    );
  });

  it('answers an output in shared memory without contents, with an empty raw entry in a raw answer', () => {
    const outputs: Tensor[] = [
      { name: 'y', datatype: 'INT8', shape: [1], data: Int8Array.of(7) },
      { name: 'z', datatype: 'INT8', shape: [1], data: Int8Array.of(8) },
    ];
    const typed = encodeModelInferResponse(response(outputs), 'typed', (name) => name === 'y');
    assert.equal(typed.outputs[0]!.contents, undefined);
    assert.deepEqual(typed.outputs[1]!.contents, { int_contents: [8] });
    const raw = encodeModelInferResponse(response(outputs), 'raw', (name) => name === 'y');
    assert.deepEqual(raw.raw_output_contents, [Buffer.alloc(0), Buffer.from([8])]);
  });
});
