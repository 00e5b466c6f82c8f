import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeHttpInferRequest, encodeHttpInferResponse } from '../../../../src/infra/http/binary-tensor.codec.js';
import type { InferenceResponse } from '../../../../src/domain/inference/inference-request.js';
import { assertDomainError } from '../../support/domain-error.assertions.js';

const le = (values: ArrayBufferView) => Buffer.from(values.buffer, values.byteOffset, values.byteLength);

/** A body of the extension: the JSON header, the tensors' bytes, and the header's value. */
function body(json: object, ...tensors: Buffer[]): [Buffer, string] {
  const header = Buffer.from(JSON.stringify(json));
  return [Buffer.concat([header, ...tensors]), String(header.length)];
}

const decode = ([bytes, header]: [Buffer, string | undefined]) => decodeHttpInferRequest(bytes, header, 64);

describe('decodeHttpInferRequest', () => {
  it('reads binary inputs in input order after the JSON header, beside JSON inputs', () => {
    const decoded = decode(
      body(
        {
          inputs: [
            { name: 'a', shape: [2], datatype: 'FP32', parameters: { binary_data_size: 8 } },
            { name: 'b', shape: [1], datatype: 'INT64', data: [7] },
            { name: 'c', shape: [2], datatype: 'BYTES', parameters: { binary_data_size: 10 } },
          ],
        },
        le(Float32Array.of(0.5, NaN)),
        Buffer.from([1, 0, 0, 0, 0x78, 1, 0, 0, 0, 0x68]),
      ),
    );
    const [a, b, c] = decoded.request.inputs;
    assert.deepEqual([...(a!.data as Float32Array)], [0.5, NaN]);
    assert.deepEqual([...(b!.data as BigInt64Array)], [7n]);
    assert.deepEqual(c!.data, ['x', 'h']);
  });

  it('decodes binary data as a view of the body where it is aligned, and as a copy where it is not', () => {
    /** A body whose FP32 data starts `pad` bytes after a 4-aligned offset (the JSON header padded with spaces). */
    const decodedWithPad = (pad: number) => {
      const json = JSON.stringify({ inputs: [{ name: 'a', shape: [2], datatype: 'FP32', parameters: { binary_data_size: 8 } }] });
      const header = Buffer.from(json.padEnd(Math.ceil(json.length / 4) * 4 + pad, ' '));
      const bytes = Buffer.alloc(header.length + 8 + 8); // its own memory, at offset 0 of its ArrayBuffer
      header.copy(bytes);
      le(Float32Array.of(1.5, -2)).copy(bytes, header.length);
      const data = decodeHttpInferRequest(bytes.subarray(0, header.length + 8), String(header.length), 64).request.inputs[0]!.data as Float32Array;
      return { data, bytes };
    };
    const aligned = decodedWithPad(0);
    assert.deepEqual([...aligned.data], [1.5, -2]);
    assert.equal(aligned.data.buffer, aligned.bytes.buffer, 'a view of the body: no copy');
    const unaligned = decodedWithPad(1);
    assert.deepEqual([...unaligned.data], [1.5, -2]);
    assert.notEqual(unaligned.data.buffer, unaligned.bytes.buffer, 'an unaligned offset is copied');
  });

  it('reads a body without the header as JSON only, and plain JSON as Fastify parsed it', () => {
    const json = { inputs: [{ name: 'x', shape: [1], datatype: 'INT32', data: [3] }] };
    assert.deepEqual([...(decode([Buffer.from(JSON.stringify(json)), undefined]).request.inputs[0]!.data as Int32Array)], [3]);
    assert.deepEqual([...(decodeHttpInferRequest(json, undefined, 64).request.inputs[0]!.data as Int32Array)], [3]);
  });

  it('says which outputs are binary: an output\'s binary_data, else the request\'s binary_data_output', () => {
    const json = { parameters: { binary_data_output: true }, inputs: [{ name: 'x', shape: [1], datatype: 'INT32', data: [3] }], outputs: [{ name: 'p', parameters: { binary_data: false } }, { name: 'q' }] };
    const { binaryOutput } = decodeHttpInferRequest(json, undefined, 64);
    assert.deepEqual([binaryOutput('p'), binaryOutput('q'), binaryOutput('r')], [false, true, true]);
  });

  const x = (parameters: object, extra: object = {}) => ({ inputs: [{ name: 'x', shape: [1, 2], datatype: 'FP32', parameters, ...extra }] });
  const two = le(Float32Array.of(1, 2));
  const cases: Array<[string, [Buffer, string], ...string[]]> = [
    ['a negative header', [body(x({ binary_data_size: 8 }), two)[0], '-1'], 'inference-header-content-length is "-1"', 'non-negative integer'],
    ['a header past the body', [body(x({ binary_data_size: 8 }), two)[0], '500'], 'is 500, but the body has only'],
    ['a header cutting the JSON', [body(x({ binary_data_size: 8 }), two)[0], '10'], 'the first 10 bytes', 'not a JSON document'],
    ['a size that is not an integer', body(x({ binary_data_size: 7.5 }), two), "input 'x': binary_data_size is 7.5"],
    ['a size past the body', body(x({ binary_data_size: 12 }), two), 'binary_data_size is 12, but only 8 bytes'],
    ['bytes left over', body(x({ binary_data_size: 8 }), two, Buffer.alloc(3)), '3 bytes of binary data beyond', '(8 bytes)'],
    ['a size not matching the shape', body(x({ binary_data_size: 4 }), two.subarray(0, 4)), 'has 4 bytes, expected 8 (2 FP32 elements'],
    ['data beside a size', body(x({ binary_data_size: 8 }, { data: [1, 2] }), two), 'both "data" and the parameter binary_data_size'],
  ];
  for (const [what, request, ...mentions] of cases) {
    it(`refuses ${what}`, () => {
      assertDomainError(() => decode(request), what === 'a size not matching the shape' ? 'INFERENCE.INVALID_DATA' : 'INFERENCE.INVALID_REQUEST', ...mentions);
    });
  }
});

describe('encodeHttpInferResponse', () => {
  const response: InferenceResponse = {
    modelName: 'm',
    modelVersion: '1',
    parameters: {},
    outputs: [
      { name: 'p', datatype: 'FP32', shape: [2], data: Float32Array.of(0.25, Infinity) },
      { name: 'q', datatype: 'BYTES', shape: [1], data: ['é'] },
    ],
  };

  it('answers plain JSON when no output is binary', () => {
    const encoded = encodeHttpInferResponse(response, () => false);
    assert.equal(encoded.contentType, 'application/json');
    assert.equal(encoded.jsonLength, undefined);
    assert.deepEqual(JSON.parse(String(encoded.body)).outputs[0].data, [0.25, 'Infinity']);
  });

  it('writes binary outputs after the JSON header, with their sizes and no data', () => {
    const encoded = encodeHttpInferResponse(response, (name) => name === 'q');
    const bytes = encoded.body as Buffer;
    assert.equal(encoded.contentType, 'application/octet-stream');
    const json = JSON.parse(bytes.subarray(0, encoded.jsonLength).toString('utf8'));
    assert.deepEqual(json.outputs[1], { name: 'q', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: 6 } });
    assert.deepEqual(json.outputs[0].data, [0.25, 'Infinity']);
    assert.deepEqual([...bytes.subarray(encoded.jsonLength)], [2, 0, 0, 0, 0xc3, 0xa9]);
  });
});

describe('decodeHttpInferRequest: shared memory and parameters', () => {
  /** A reader over one fake region: answers the slice's bytes and records what was read. */
  const region = (bytes: Buffer) => {
    const reads: { region: string; offset: number; byteSize: number; input: string }[] = [];
    return { reads, read: (slice: { region: string; offset: number; byteSize: number }, input: string) => (reads.push({ ...slice, input }), new Uint8Array(bytes.subarray(slice.offset, slice.offset + slice.byteSize))) };
  };

  it('reads an input from the slice its parameters name, beside binary data; lists the outputs in shared memory', () => {
    const shm = region(Buffer.concat([Buffer.alloc(4), le(Int32Array.of(5, 6))]));
    const [bytes, header] = body(
      {
        inputs: [
          { name: 'a', shape: [2], datatype: 'INT32', parameters: { shared_memory_region: 'r', shared_memory_byte_size: 8, shared_memory_offset: 4 } },
          { name: 'b', shape: [1], datatype: 'INT8', parameters: { binary_data_size: 1 } },
        ],
        outputs: [{ name: 'y', parameters: { binary_data: false, shared_memory_region: 'o', shared_memory_byte_size: 16 } }, { name: 'z', parameters: { binary_data: true } }],
      },
      Buffer.from([3]),
    );
    const decoded = decodeHttpInferRequest(bytes, header, 64, shm);
    assert.deepEqual(decoded.request.inputs[0]!.data, Int32Array.of(5, 6));
    assert.deepEqual(decoded.request.inputs[1]!.data, Int8Array.of(3));
    assert.deepEqual(shm.reads, [{ region: 'r', offset: 4, byteSize: 8, input: 'a' }]);
    assert.deepEqual([...decoded.sharedMemoryOutputs], [['y', { region: 'o', offset: 0, byteSize: 16 }]]);
    assert.equal(decoded.binaryOutput('y'), false);
    assert.equal(decoded.binaryOutput('z'), true);
  });

  it('refuses parameters it does not act on, wherever they are, naming them', () => {
    const input = { name: 'a', shape: [1], datatype: 'INT8', data: [1] };
    assertDomainError(() => decodeHttpInferRequest({ parameters: { sequence_id: 1 }, inputs: [input] }, undefined, 64), 'INFERENCE.INVALID_REQUEST', 'the request', "'sequence_id'");
    assertDomainError(() => decodeHttpInferRequest({ inputs: [{ ...input, parameters: { layout: 'NHWC' } }] }, undefined, 64), 'INFERENCE.INVALID_REQUEST', "input 'a'", "'layout'");
    assertDomainError(() => decodeHttpInferRequest({ inputs: [input], outputs: [{ name: 'y', parameters: { top_k: 1 } }] }, undefined, 64), 'INFERENCE.INVALID_REQUEST', "output 'y'", "'top_k'");
    // What Triton's clients send is known: priority, timeout, binary_data_output, binary_data, classification.
    const known = decodeHttpInferRequest(
      { parameters: { priority: 1, timeout: 100, binary_data_output: true }, inputs: [input], outputs: [{ name: 'y', parameters: { binary_data: false, classification: 2 } }] },
      undefined,
      64,
    );
    assert.equal(known.binaryOutput('y'), false);
  });

  it('refuses a slice beside data or binary data, and a region without its byte size', () => {
    const shm = region(Buffer.alloc(8));
    const slice = { shared_memory_region: 'r', shared_memory_byte_size: 1 };
    assertDomainError(() => decodeHttpInferRequest({ inputs: [{ name: 'a', shape: [1], datatype: 'INT8', data: [1], parameters: slice }] }, undefined, 64, shm), 'INFERENCE.INVALID_REQUEST', "'r'", '"data"');
    assertDomainError(
      () => decodeHttpInferRequest({ inputs: [{ name: 'a', shape: [1], datatype: 'INT8', parameters: { shared_memory_region: 'r' } }] }, undefined, 64, shm),
      'INFERENCE.INVALID_REQUEST',
      "input 'a'",
      'shared_memory_byte_size',
    );
    assertDomainError(
      () => decodeHttpInferRequest({ inputs: [{ name: 'a', shape: [2], datatype: 'INT8', parameters: slice }] }, undefined, 64, shm),
      'INFERENCE.INVALID_DATA',
      "input 'a'",
      "region 'r'",
    );
  });

  it('answers an output in shared memory with its name, datatype and shape only', () => {
    const encoded = encodeHttpInferResponse(
      { modelName: 'm', modelVersion: '1', parameters: {}, outputs: [{ name: 'y', datatype: 'INT32', shape: [2], data: Int32Array.of(1, 2) }, { name: 'z', datatype: 'INT8', shape: [1], data: Int8Array.of(4) }] },
      () => false,
      (name) => name === 'y',
    );
    assert.deepEqual(JSON.parse(encoded.body as string).outputs, [
      { name: 'y', datatype: 'INT32', shape: [2] },
      { name: 'z', datatype: 'INT8', shape: [1], data: [4] },
    ]);
  });
});
