import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FLOAT, floatTensor, int64Tensor, intAttr, node, onnx } from '../../../models/onnx-graph.js';

// Tiny ONNX graphs for the model-loading tests, written with onnx-proto like the built-in models:
// one 1×1×1 convolution (fixed weights), so any channel counts, shapes and types can be declared.

const FLOAT16 = 10;

export interface TestGraph {
  /** Declared input shape (a string is a symbolic dim); default ['N', channelsIn, 'X', 'Y', 'Z']. */
  input?: (number | string)[];
  channelsIn?: number;
  channelsOut?: number;
  inputType?: 'float32' | 'float16';
  /** Declared output shape; default ['N', channelsOut, 'X', 'Y', 'Z']. */
  output?: (number | string)[];
  /** A second output after the first (a deep-supervision head): the first one times 2. */
  secondOutput?: boolean;
  /** Reshape the input to this fixed shape first: the graph runs on exactly that size only. */
  fixedReshape?: number[];
}

const valueInfo = (name: string, elemType: number, dims: (number | string)[]) =>
  onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } },
    }),
  });

export function testGraph(g: TestGraph = {}): Uint8Array {
  const cin = g.channelsIn ?? 2;
  const cout = g.channelsOut ?? 1;
  const nodes = [];
  let x = 'input';
  if (g.inputType === 'float16') {
    nodes.push(node('Cast', [x], ['input_f32'], [intAttr('to', FLOAT)]));
    x = 'input_f32';
  }
  if (g.fixedReshape) {
    nodes.push(node('Reshape', [x, 'fixed_shape'], ['reshaped']));
    x = 'reshaped';
  }
  nodes.push(node('Conv', [x, 'weights'], ['logits']));
  if (g.secondOutput) nodes.push(node('Mul', ['logits', 'two'], ['head2']));
  const weights: number[] = [];
  for (let o = 0; o < cout; o++) for (let i = 0; i < cin; i++) weights.push((o + 1) / (i + 2));
  const outShape = g.output ?? ['N', cout, 'X', 'Y', 'Z'];
  const graph = onnx.GraphProto.create({
    name: 'test',
    input: [valueInfo('input', g.inputType === 'float16' ? FLOAT16 : FLOAT, g.input ?? ['N', cin, 'X', 'Y', 'Z'])],
    output: [valueInfo('logits', FLOAT, outShape), ...(g.secondOutput ? [valueInfo('head2', FLOAT, outShape)] : [])],
    initializer: [
      floatTensor('weights', [cout, cin, 1, 1, 1], weights),
      ...(g.secondOutput ? [floatTensor('two', [], [2])] : []),
      ...(g.fixedReshape ? [int64Tensor('fixed_shape', g.fixedReshape)] : []),
    ],
    node: nodes,
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'strokeview-test',
    opsetImport: [{ domain: '', version: 13 }],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

/** A segmentation manifest for a test graph (two inputs, no preprocessing, sigmoid). */
export function testManifest(id: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    name: `test model ${id}`,
    version: '1.0.0',
    kind: 'trained',
    description: 'A test graph: one fixed 1×1×1 convolution.',
    inputs: ['dwi', 'adc'],
    preprocessing: [{ kind: 'none' }, { kind: 'none' }],
    patchSize: null,
    output: { activation: 'sigmoid' },
    threshold: 0.5,
    ...over,
  };
}

/** Writes <root>/<name>/{manifest.json, model.onnx}; returns the folder. */
export function writeModelFolder(root: string, name: string, manifest: Record<string, unknown>, graph: TestGraph = {}): string {
  const dir = path.join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  writeFileSync(path.join(dir, 'model.onnx'), testGraph(graph));
  return dir;
}

export const tempModelsRoot = () => mkdtempSync(path.join(tmpdir(), 'sv-models-'));
