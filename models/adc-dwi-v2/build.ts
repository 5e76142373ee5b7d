/**
 * Builds models/adc-dwi-v2/model.onnx: `npm run build:model`. Deterministic (a test checks the
 * committed file against a fresh build).
 *
 * Method — a rule, not a trained network; every constant from the literature or from physics,
 * none fitted to any case:
 *   bright = zDWI > 3        DWI hyperintense: more than 3 robust SDs above the head's median
 *                            (median ± 3 × 1.4826·MAD, the "very conservative" outlier bound of
 *                            Leys et al., J Exp Soc Psychol 49:764, 2013). Median and MAD, not
 *                            mean and SD, so a large lesion cannot raise its own threshold.
 *   core   = ADC < 620       ×10⁻⁶ mm²/s, the ischemic-core threshold validated against final
 *                            infarct (Purushotham et al., Int J Stroke 10:348, 2015; RAPID's
 *                            default). The pipeline converts the case's ADC to this unit first.
 *   tissue = ADC > 100       ×10⁻⁶ mm²/s: no tissue diffuses that slowly (even pus is ≈ 400);
 *                            lower values are background or failed fits (noise excluded). CSF
 *                            (≈ 3000, free water at 37 °C) fails the core test.
 *   lesion = bright ∧ core ∧ tissue
 * The brain is implied: background and skull have DWI far below the head's median. The
 * manifest then drops components under 0.01 mL (one voxel of 2 mm isotropic is 0.008 mL: a single
 * voxel cannot be told from noise).
 * Input  "input": float32 [N, 2, X, Y, Z] (channel 0 robust-z DWI, channel 1 ADC in 10⁻⁶ mm²/s)
 * Output "probability": float32 [N, 1, X, Y, Z], 0 or 1
 */
import { FLOAT, floatTensor, int64Tensor, intAttr, node, onnx, tensorType, writeWhenRun } from '../onnx-graph.js';

export const DWI_ROBUST_Z = 3;
export const ADC_CORE_MICRO = 620;
export const ADC_TISSUE_MIN_MICRO = 100;

export function buildAdcDwiModel(): Uint8Array {
  const graph = onnx.GraphProto.create({
    name: 'adc-dwi-v2',
    input: [onnx.ValueInfoProto.create({ name: 'input', type: tensorType(['N', 2, 'X', 'Y', 'Z']) })],
    output: [onnx.ValueInfoProto.create({ name: 'probability', type: tensorType(['N', 1, 'X', 'Y', 'Z']) })],
    initializer: [
      int64Tensor('dwi_channel', [0]),
      int64Tensor('adc_channel', [1]),
      floatTensor('dwi_z_threshold', [], [DWI_ROBUST_Z]),
      floatTensor('adc_core_threshold', [], [ADC_CORE_MICRO]),
      floatTensor('adc_tissue_minimum', [], [ADC_TISSUE_MIN_MICRO]),
    ],
    node: [
      node('Gather', ['input', 'dwi_channel'], ['dwi'], [intAttr('axis', 1)]),
      node('Gather', ['input', 'adc_channel'], ['adc'], [intAttr('axis', 1)]),
      node('Greater', ['dwi', 'dwi_z_threshold'], ['bright']),
      node('Less', ['adc', 'adc_core_threshold'], ['core']),
      node('Greater', ['adc', 'adc_tissue_minimum'], ['tissue']),
      node('And', ['bright', 'core'], ['bright_core']),
      node('And', ['bright_core', 'tissue'], ['lesion']),
      node('Cast', ['lesion'], ['probability'], [intAttr('to', FLOAT)]),
    ],
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'strokeview',
    producerVersion: '1',
    modelVersion: 2,
    docString: 'adc-dwi-v2: DWI robust z > 3 (median/MAD over the head) AND 100 < ADC < 620e-6 mm2/s. Rule-based, not trained.',
    opsetImport: [{ domain: '', version: 13 }],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

writeWhenRun(import.meta.url, buildAdcDwiModel);
