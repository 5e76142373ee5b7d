/**
 * A real-sized 3-D U-Net as an ONNX graph, written with onnx-proto for the #25 benchmark
 * (bench/unet.ts): the shape of nnU-Net's PlainConvUNet for a 3d_fullres configuration, cut to
 * 4 stages. Built at run time into a temporary folder, never committed; the weights are random
 * (He-initialised from a fixed seed), so its output means nothing — it is there to cost what a
 * trained network of this size costs.
 *
 * Per stage: two 3×3×3 convolutions, each followed by InstanceNormalization (ε 1e-5, affine) and
 * LeakyReLU (α 0.01); stages 1–3 start with a stride-2 convolution (nnU-Net downsamples with
 * strided convolutions, not pooling). The decoder: ConvTranspose 2×2×2 stride 2, concatenation
 * with the encoder's skip, two conv–norm–LeakyReLU blocks; a final 1×1×1 convolution to the
 * class logits (softmax is the manifest's `output.activation`).
 *
 * Input  "input":  float32 [N, C, D0, D1, D2] (the patch; N dynamic)
 * Output "logits": float32 [N, classes, D0, D1, D2]
 */
import { FLOAT, intAttr, intsAttr, node, onnx, tensorType } from '../models/onnx-graph.js';

export interface UnetOptions {
  inChannels: number;
  classes: number;
  /** Feature maps per stage, e.g. [16, 32, 64, 128]. */
  channels: number[];
  /** The static spatial dims of the input (each divisible by 2^(stages − 1)). */
  patch: [number, number, number];
  seed: number;
  /** The final convolution's bias per class (e.g. [0, -3]: the lesion class rare, as lesions are). */
  headBias?: number[];
}

/** mulberry32: a small deterministic PRNG. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function buildUnet(opts: UnetOptions): { bytes: Uint8Array; parameters: number } {
  const rand = prng(opts.seed);
  // standard normal by Box–Muller
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const initializer: InstanceType<typeof onnx.TensorProto>[] = [];
  const nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  let parameters = 0;
  const weights = (name: string, dims: number[], std: number) => {
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = normal() * std;
    parameters += n;
    initializer.push(onnx.TensorProto.create({ name, dims, dataType: FLOAT, rawData: new Uint8Array(data.buffer) }));
    return name;
  };
  const constant = (name: string, n: number, value: number) => {
    parameters += n;
    initializer.push(
      onnx.TensorProto.create({ name, dims: [n], dataType: FLOAT, rawData: new Uint8Array(new Float32Array(n).fill(value).buffer) }),
    );
    return name;
  };

  /** conv 3×3×3 (stride 1 or 2) → InstanceNorm → LeakyReLU; He-initialised (fan-in, gain √2). */
  const block = (x: string, cin: number, cout: number, name: string, stride = 1) => {
    const w = weights(`${name}.w`, [cout, cin, 3, 3, 3], Math.sqrt(2 / (cin * 27)));
    const b = constant(`${name}.b`, cout, 0);
    nodes.push(
      node(
        'Conv',
        [x, w, b],
        [`${name}.conv`],
        [intsAttr('kernel_shape', [3, 3, 3]), intsAttr('pads', [1, 1, 1, 1, 1, 1]), intsAttr('strides', [stride, stride, stride])],
      ),
    );
    nodes.push(
      node(
        'InstanceNormalization',
        [`${name}.conv`, constant(`${name}.gamma`, cout, 1), constant(`${name}.beta`, cout, 0)],
        [`${name}.norm`],
        [onnx.AttributeProto.create({ name: 'epsilon', type: onnx.AttributeProto.AttributeType.FLOAT, f: 1e-5 })],
      ),
    );
    nodes.push(
      node(
        'LeakyRelu',
        [`${name}.norm`],
        [`${name}.out`],
        [onnx.AttributeProto.create({ name: 'alpha', type: onnx.AttributeProto.AttributeType.FLOAT, f: 0.01 })],
      ),
    );
    return `${name}.out`;
  };

  const ch = opts.channels;
  const skips: string[] = [];
  let x = 'input';
  let cin = opts.inChannels;
  for (let s = 0; s < ch.length; s++) {
    x = block(x, cin, ch[s]!, `enc${s}.0`, s === 0 ? 1 : 2);
    x = block(x, ch[s]!, ch[s]!, `enc${s}.1`);
    skips.push(x);
    cin = ch[s]!;
  }
  for (let s = ch.length - 2; s >= 0; s--) {
    const up = `dec${s}.up`;
    const w = weights(`${up}.w`, [ch[s + 1]!, ch[s]!, 2, 2, 2], Math.sqrt(2 / (ch[s + 1]! * 8)));
    nodes.push(
      node(
        'ConvTranspose',
        [x, w, constant(`${up}.b`, ch[s]!, 0)],
        [up],
        [intsAttr('kernel_shape', [2, 2, 2]), intsAttr('strides', [2, 2, 2])],
      ),
    );
    nodes.push(node('Concat', [up, skips[s]!], [`dec${s}.cat`], [intAttr('axis', 1)]));
    x = block(`dec${s}.cat`, 2 * ch[s]!, ch[s]!, `dec${s}.0`);
    x = block(x, ch[s]!, ch[s]!, `dec${s}.1`);
  }
  const head = weights('head.w', [opts.classes, ch[0]!, 1, 1, 1], Math.sqrt(1 / ch[0]!));
  const bias = Float32Array.from({ length: opts.classes }, (_, c) => opts.headBias?.[c] ?? 0);
  parameters += opts.classes;
  initializer.push(
    onnx.TensorProto.create({ name: 'head.b', dims: [opts.classes], dataType: FLOAT, rawData: new Uint8Array(bias.buffer) }),
  );
  nodes.push(node('Conv', [x, head, 'head.b'], ['logits'], [intsAttr('kernel_shape', [1, 1, 1])]));

  const graph = onnx.GraphProto.create({
    name: 'bench-unet',
    input: [onnx.ValueInfoProto.create({ name: 'input', type: tensorType(['N', opts.inChannels, ...opts.patch]) })],
    output: [onnx.ValueInfoProto.create({ name: 'logits', type: tensorType(['N', opts.classes, ...opts.patch]) })],
    initializer,
    node: nodes,
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'strokeview-bench',
    producerVersion: '1',
    modelVersion: 1,
    docString: `bench U-Net: ${ch.length} stages ${ch.join('-')}, random weights (seed ${opts.seed}); not a trained network`,
    opsetImport: [{ domain: '', version: 17 }],
    graph,
  });
  return { bytes: onnx.ModelProto.encode(model).finish(), parameters };
}
