import onnxProto from 'onnx-proto';
import { classifierModel } from '../../scripts/build-models.js';

import onnx = onnxProto.onnx;
const { DataType } = onnx.TensorProto;

/**
 * A classifier-compatible model (input 'input' FP32 [-1,4], outputs 'probabilities' FP32 [-1,3] and
 * 'label' INT64 [-1]) that loads (and passes a zero-filled warm-up row, were one configured), but fails at
 * run time on any ordinary input: the largest element of the input, cast to INT64, indexes a
 * 3-element table (Gather), which onnxruntime refuses once it is 3 or more ("indices element out of
 * data bounds"). An all-zero input indexes element 0, a factor of 1, and the answer is the
 * classifier's own.
 */
export function faultyClassifierModel(): Uint8Array {
  const model = onnx.ModelProto.decode(classifierModel());
  const graph = model.graph!;
  graph.name = 'faulty_classifier';
  graph.initializer = [
    ...(graph.initializer ?? []),
    { name: 'fault_table', dataType: DataType.FLOAT, dims: [3], rawData: new Uint8Array(Float32Array.of(1, 1, 1).buffer) },
  ];
  const nodes: onnx.INodeProto[] = [
    { opType: 'ReduceMax', input: ['input'], output: ['fault_max'], attribute: [{ name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 }], name: 'fault_max' },
    { opType: 'Cast', input: ['fault_max'], output: ['fault_index'], attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: DataType.INT64 }], name: 'fault_index' },
    { opType: 'Gather', input: ['fault_table', 'fault_index'], output: ['fault_factor'], attribute: [], name: 'fault_gather' },
    { opType: 'Mul', input: ['input', 'fault_factor'], output: ['fault_input'], attribute: [], name: 'fault_mul' },
  ];
  // The classifier's first node (MatMul) reads the scaled input instead of the input.
  const rest = (graph.node ?? []).map((node) => ({ ...node, input: (node.input ?? []).map((name) => (name === 'input' ? 'fault_input' : name)) }));
  graph.node = [...nodes, ...rest];
  return onnx.ModelProto.encode(model).finish();
}
