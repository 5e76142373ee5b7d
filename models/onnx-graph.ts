/**
 * Small helpers for writing the built-in models' ONNX graphs with onnx-proto (nothing downloaded).
 * Shared by models/<id>/build.ts; each build is deterministic, so the committed model.onnx can be
 * checked byte for byte against a fresh build.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import onnxProto from 'onnx-proto';

export const { onnx } = onnxProto;
export const FLOAT = 1;
export const INT64 = 7;

export function floatTensor(name: string, dims: number[], values: number[]) {
  return onnx.TensorProto.create({ name, dims, dataType: FLOAT, floatData: values });
}

export function int64Tensor(name: string, values: number[]) {
  return onnx.TensorProto.create({ name, dims: [values.length], dataType: INT64, int64Data: values });
}

export function node(opType: string, inputs: string[], outputs: string[], attrs: InstanceType<typeof onnx.AttributeProto>[] = []) {
  return onnx.NodeProto.create({ opType, input: inputs, output: outputs, name: outputs[0], attribute: attrs });
}

export function intsAttr(name: string, ints: number[]) {
  return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INTS, ints });
}

export function intAttr(name: string, i: number) {
  return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i });
}

export function tensorType(dims: (number | string)[]) {
  return onnx.TypeProto.create({
    tensorType: {
      elemType: FLOAT,
      shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
    },
  });
}

/** When `moduleUrl` is the script being run: writes model.onnx beside it. */
export function writeWhenRun(moduleUrl: string, build: () => Uint8Array): void {
  const self = fileURLToPath(moduleUrl);
  if (!process.argv[1] || path.resolve(process.argv[1]) !== self) return;
  const out = path.join(path.dirname(self), 'model.onnx');
  const bytes = build();
  writeFileSync(out, bytes);
  process.stdout.write(`wrote ${out} (${bytes.length} bytes)\n`);
}
