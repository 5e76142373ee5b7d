/**
 * Builds models/adc-core-v1/model.onnx from the method below, with nothing downloaded:
 * `npm run build:model`. The output is byte-identical on every run (a test checks the committed
 * file against it).
 *
 * Method — a rule, not a trained network:
 *   core   = sigmoid((620 − ADC) / 25)      ADC below 620×10⁻⁶ mm²/s, the RAPID ischemic-core threshold
 *   bright = sigmoid((zDWI − 2) / 0.4)      DWI hyperintense: z-score above ~2 within the head
 *   p      = core × bright, then a 3×3×3 smoothing convolution (weights centre 8, faces 2, edges 1)
 * Input  "input": float32 [N, 2, X, Y, Z] (channel 0 z-scored DWI, channel 1 raw ADC)
 * Output "probability": float32 [N, 1, X, Y, Z]
 */
import { floatTensor, INT64, intAttr, intsAttr, node, onnx, tensorType, writeWhenRun } from '../onnx-graph.js';

/** 3×3×3 kernel: centre 8, 6 faces 2, 12 edges 1, corners 0 — normalised to sum 1. */
function smoothingKernel(): number[] {
  const w: number[] = [];
  for (let z = -1; z <= 1; z++)
    for (let y = -1; y <= 1; y++)
      for (let x = -1; x <= 1; x++) {
        const away = Math.abs(x) + Math.abs(y) + Math.abs(z);
        w.push(away === 0 ? 8 : away === 1 ? 2 : away === 2 ? 1 : 0);
      }
  const sum = w.reduce((a, b) => a + b, 0);
  return w.map((x) => x / sum);
}

export function buildAdcCoreModel(): Uint8Array {
  const graph = onnx.GraphProto.create({
    name: 'adc-core-v1',
    input: [onnx.ValueInfoProto.create({ name: 'input', type: tensorType(['N', 2, 'X', 'Y', 'Z']) })],
    output: [onnx.ValueInfoProto.create({ name: 'probability', type: tensorType(['N', 1, 'X', 'Y', 'Z']) })],
    initializer: [
      onnx.TensorProto.create({ name: 'dwi_channel', dims: [1], dataType: INT64, int64Data: [0] }),
      onnx.TensorProto.create({ name: 'adc_channel', dims: [1], dataType: INT64, int64Data: [1] }),
      floatTensor('adc_threshold', [], [620]),
      floatTensor('adc_inv_width', [], [1 / 25]),
      floatTensor('dwi_z_threshold', [], [2]),
      floatTensor('dwi_inv_width', [], [1 / 0.4]),
      floatTensor('smoothing', [1, 1, 3, 3, 3], smoothingKernel()),
    ],
    node: [
      node('Gather', ['input', 'dwi_channel'], ['dwi'], [intAttr('axis', 1)]),
      node('Gather', ['input', 'adc_channel'], ['adc'], [intAttr('axis', 1)]),
      node('Sub', ['adc_threshold', 'adc'], ['adc_margin']),
      node('Mul', ['adc_margin', 'adc_inv_width'], ['adc_logit']),
      node('Sigmoid', ['adc_logit'], ['core']),
      node('Sub', ['dwi', 'dwi_z_threshold'], ['dwi_margin']),
      node('Mul', ['dwi_margin', 'dwi_inv_width'], ['dwi_logit']),
      node('Sigmoid', ['dwi_logit'], ['bright']),
      node('Mul', ['core', 'bright'], ['lesion']),
      node('Conv', ['lesion', 'smoothing'], ['probability'], [intsAttr('kernel_shape', [3, 3, 3]), intsAttr('pads', [1, 1, 1, 1, 1, 1])]),
    ],
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'strokeview',
    producerVersion: '1',
    modelVersion: 1,
    docString: 'adc-core-v1: ADC < 620e-6 mm2/s combined with DWI z > 2 as soft sigmoids, 3x3x3 smoothing. Rule-based, not trained.',
    opsetImport: [{ domain: '', version: 13 }],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

writeWhenRun(import.meta.url, buildAdcCoreModel);
