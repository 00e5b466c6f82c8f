import type { Datatype } from '../../domain/shared/datatype.js';

/** onnxruntime's tensor type names and the protocol's datatypes, one to one. */
const DATATYPE_OF_ORT_TYPE: Record<string, Datatype> = {
  bool: 'BOOL',
  uint8: 'UINT8',
  uint16: 'UINT16',
  uint32: 'UINT32',
  uint64: 'UINT64',
  int8: 'INT8',
  int16: 'INT16',
  int32: 'INT32',
  int64: 'INT64',
  float16: 'FP16',
  float32: 'FP32',
  float64: 'FP64',
  string: 'BYTES',
};

const ORT_TYPE_OF_DATATYPE = Object.fromEntries(
  Object.entries(DATATYPE_OF_ORT_TYPE).map(([ort, datatype]) => [datatype, ort]),
) as Record<Datatype, string>;

export function datatypeOfOrtType(type: string): Datatype | undefined {
  return DATATYPE_OF_ORT_TYPE[type];
}

export function ortTypeOf(datatype: Datatype): string {
  return ORT_TYPE_OF_DATATYPE[datatype];
}
