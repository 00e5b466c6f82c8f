import type { DeferredContents } from './deferred-tensor-contents.js';

/**
 * The messages of grpc_service.proto as objects, the way PROTO_LOADER_OPTIONS decodes them: 64-bit
 * integers as decimal strings, bytes as Buffers, absent repeated fields as empty arrays, absent
 * scalars as undefined, a oneof's set field named by its group. Outgoing messages may use numbers
 * for 64-bit fields (protobuf.js takes both).
 */
export type Int64 = string | number;

export interface InferParameterMessage {
  readonly parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'double_param' | 'uint64_param';
  readonly bool_param?: boolean;
  readonly int64_param?: Int64;
  readonly string_param?: string;
  readonly double_param?: number;
  readonly uint64_param?: Int64;
}

export interface InferTensorContentsMessage {
  readonly bool_contents?: boolean[];
  readonly int_contents?: number[];
  readonly int64_contents?: Int64[];
  readonly uint_contents?: number[];
  readonly uint64_contents?: Int64[];
  readonly fp32_contents?: number[];
  readonly fp64_contents?: number[];
  readonly bytes_contents?: Buffer[];
}

export interface InputTensorMessage {
  readonly name?: string;
  readonly datatype?: string;
  readonly shape: Int64[];
  readonly parameters?: Record<string, InferParameterMessage>;
  /** Decoded, or (as the server receives it) still bytes until the request is judged: deferred-tensor-contents.ts. */
  readonly contents?: InferTensorContentsMessage | DeferredContents;
}

export interface ModelInferRequestMessage {
  readonly model_name?: string;
  readonly model_version?: string;
  readonly id?: string;
  readonly parameters?: Record<string, InferParameterMessage>;
  readonly inputs: InputTensorMessage[];
  readonly outputs: { readonly name?: string; readonly parameters?: Record<string, InferParameterMessage> }[];
  readonly raw_input_contents: Buffer[];
}

export interface OutputTensorMessage {
  readonly name: string;
  readonly datatype: string;
  readonly shape: Int64[];
  readonly contents?: InferTensorContentsMessage;
}

export interface ModelInferResponseMessage {
  readonly model_name: string;
  readonly model_version: string;
  readonly id: string;
  readonly parameters: Record<string, InferParameterMessage>;
  readonly outputs: OutputTensorMessage[];
  readonly raw_output_contents: Buffer[];
}

export interface ModelStreamInferResponseMessage {
  readonly error_message: string;
  readonly infer_response?: Partial<ModelInferResponseMessage>;
}

/** The `name`/`version` pair most requests carry; an empty version means "the server chooses". */
export interface ModelVersionRequestMessage {
  readonly name?: string;
  readonly version?: string;
}

export interface ModelRepositoryParameterMessage {
  readonly parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'bytes_param';
  readonly bool_param?: boolean;
  readonly int64_param?: Int64;
  readonly string_param?: string;
  readonly bytes_param?: Buffer;
}

export interface RepositoryModelRequestMessage {
  readonly repository_name?: string;
  readonly model_name?: string;
  readonly parameters?: Record<string, ModelRepositoryParameterMessage>;
}
