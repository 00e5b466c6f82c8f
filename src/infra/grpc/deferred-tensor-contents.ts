import { join } from 'node:path';
import type { PackageDefinition } from '@grpc/proto-loader';
import protobuf from 'protobufjs';

/** The fields of InferTensorContents (inference-messages.ts types their values). */
export type ContentsField = 'bool_contents' | 'int_contents' | 'int64_contents' | 'uint_contents' | 'uint64_contents' | 'fp32_contents' | 'fp64_contents' | 'bytes_contents';

/**
 * ModelInferRequest messages decoded without their inputs' typed `contents`: each input's
 * InferTensorContents stays as its bytes (a {@link DeferredContents}) until the request has been
 * judged against the model. grpc-js decodes a message before any handler sees it; decoding 13
 * million `fp32_contents` into JavaScript numbers took seconds of the main thread, for a request
 * then refused for its shape. Here the same message costs a decode of its envelope (names,
 * datatypes, shapes, parameters; raw contents stay views of the message), and its elements are
 * counted from the wire format without being decoded.
 *
 * The types come from the same .proto with protobufjs (the library @grpc/proto-loader uses), in
 * the same object form as PROTO_LOADER_OPTIONS; the request type is a copy whose
 * `InferInputTensor.contents` is declared `bytes` (the same field number and wire type).
 */

/** toObject's options matching PROTO_LOADER_OPTIONS (grpc-options.ts). */
const OBJECT_OPTIONS: protobuf.IConversionOptions = { longs: String, enums: String, defaults: false, arrays: true, objects: true, oneofs: true };

/** An input's typed contents, not decoded yet: their bytes, what counts them, what decodes them. */
export class DeferredContents {
  constructor(
    private readonly bytes: Uint8Array,
    private readonly type: protobuf.Type,
  ) {}

  /** The bytes the contents take on the wire (what a stream holds for them before they are decoded). */
  get byteLength(): number {
    return this.bytes.byteLength;
  }

  /** Elements per contents field, counted on the wire (packed or not); throws on bytes that are not a valid message. */
  elementCounts(): Partial<Record<ContentsField, number>> {
    const counts: Partial<Record<ContentsField, number>> = {};
    const reader = protobuf.Reader.create(this.bytes);
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      const field = FIELD_OF_NUMBER[tag >>> 3];
      const wireType = tag & 7;
      let elements = 1;
      if (wireType === 2) {
        const length = reader.uint32();
        const start = reader.pos;
        reader.skip(length);
        if (field !== undefined && field !== 'bytes_contents') elements = packedElements(field, this.bytes, start, length);
      } else {
        reader.skipType(wireType);
      }
      if (field !== undefined) counts[field] = (counts[field] ?? 0) + elements;
    }
    return counts;
  }

  /** The contents as PROTO_LOADER_OPTIONS decode them (InferTensorContentsMessage). */
  decode(): Partial<Record<ContentsField, unknown[]>> {
    return this.type.toObject(this.type.decode(this.bytes), OBJECT_OPTIONS) as Partial<Record<ContentsField, unknown[]>>;
  }
}

/** Contents fields by field number (grpc_service.proto's InferTensorContents). */
const FIELD_OF_NUMBER: Record<number, ContentsField> = {
  1: 'bool_contents',
  2: 'int_contents',
  3: 'int64_contents',
  4: 'uint_contents',
  5: 'uint64_contents',
  6: 'fp32_contents',
  7: 'fp64_contents',
  8: 'bytes_contents',
};

/** Elements in a packed repeated field: fixed-size for floats and doubles, one per last varint byte otherwise. */
function packedElements(field: ContentsField, bytes: Uint8Array, start: number, length: number): number {
  if (field === 'fp32_contents') return Math.floor(length / 4);
  if (field === 'fp64_contents') return Math.floor(length / 8);
  let count = 0;
  for (let i = start; i < start + length; i++) if (bytes[i]! < 0x80) count++;
  return count;
}

/**
 * Makes the listed methods (which take a ModelInferRequest) decode their requests with the inputs'
 * contents deferred. `protoDir`/`protoFile` name the .proto the package definition came from.
 */
export function deferTensorContents(packageDefinition: PackageDefinition, service: string, methods: readonly string[], protoDir: string, protoFile: string): void {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => join(protoDir, target);
  root.loadSync(protoFile, { keepCase: true });
  const contentsType = root.lookupType('inference.InferTensorContents');
  const json = root.toJSON() as { nested: Record<string, { nested: Record<string, DescriptorJson> }> };
  const input = json.nested.inference!.nested.ModelInferRequest!.nested!.InferInputTensor!;
  input.fields.contents = { type: 'bytes', id: input.fields.contents!.id };
  const requestType = protobuf.Root.fromJSON(json).lookupType('inference.ModelInferRequest');
  const definition = packageDefinition[service] as Record<string, { requestDeserialize: (bytes: Buffer) => unknown }> | undefined;
  for (const method of methods) {
    const attributes = definition?.[method];
    if (!attributes) throw new Error(`no method ${service}.${method} in the package definition`);
    attributes.requestDeserialize = (bytes) => {
      const message = requestType.toObject(requestType.decode(bytes), OBJECT_OPTIONS) as { inputs?: { contents?: unknown }[] };
      for (const tensor of message.inputs ?? []) {
        if (tensor.contents instanceof Uint8Array) tensor.contents = new DeferredContents(tensor.contents, contentsType);
      }
      return message;
    };
  }
}

interface DescriptorJson {
  fields: Record<string, { type: string; id: number }>;
  nested?: Record<string, DescriptorJson>;
}
