import onnxProto from 'onnx-proto';
import { identityAllTypesModel } from '../../scripts/build-models.js';

import onnx = onnxProto.onnx;

/**
 * identity_all_types cut down to some of its datatypes (KServe V2 names: 'BOOL', 'FP16', 'BYTES'...):
 * inputs `in_<type>`, outputs `out_<type>`, dims [batch, n]. The model takes every one of its inputs,
 * so a request in typed form (FP16 has no typed field) needs a model without FP16.
 */
export function identityModelOf(datatypes: readonly string[]): Uint8Array {
  const keep = new Set(datatypes.map((datatype) => datatype.toLowerCase()));
  const model = onnx.ModelProto.decode(identityAllTypesModel());
  const graph = model.graph!;
  const kept = (name: string) => keep.has(name.slice(name.indexOf('_') + 1));
  graph.input = (graph.input ?? []).filter((value) => kept(value.name!));
  graph.output = (graph.output ?? []).filter((value) => kept(value.name!));
  graph.node = (graph.node ?? []).filter((node) => kept(node.input![0]!));
  if (graph.input.length !== keep.size) throw new Error(`identity_all_types has no input for some of ${datatypes.join(', ')}`);
  return onnx.ModelProto.encode(model).finish();
}
