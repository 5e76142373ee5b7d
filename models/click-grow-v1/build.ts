/**
 * Builds models/click-grow-v1/model.onnx: `npm run build:model`. Deterministic (a test checks the
 * committed file against a fresh build).
 *
 * The built-in interactive (click-to-segment) model. A rule, not a trained network; the constants
 * are from the literature or physics, or are stated choices, and none is fitted to any case.
 *
 * Input  "input": float32 [1, 5, Z, Y, X], the crop around the clicks (axisOrder "zyx"):
 *   0 DWI as a robust z-score, (x − median) / (1.4826·MAD) over the head of the WHOLE volume
 *   1 ADC in 10⁻⁶ mm²/s
 *   2 positive guidance: a Gaussian around each positive click, peak exactly 1 at the clicked voxel
 *   3 negative guidance: likewise for the negative clicks
 *   4 the mask being refined (0/1)
 * Output "probability": float32 [1, 1, Z, Y, X], 0 or 1: the new mask inside the crop.
 *
 * Method:
 *   seed    = positive > 0.99    the clicked voxels. The peak is exactly 1; a neighbour one voxel
 *   negSeed = negative > 0.99    away is exp(−d²/2σ²) ≤ 0.986 for any voxel ≥ 0.5 mm with σ = 3 mm,
 *                                so only the clicked voxel passes.
 *   seedZ   = Σ(dwi·seed) / max(Σ seed, 1), seedAdc likewise: the clicked voxels' mean DWI z-score
 *             and ADC (0 when there is no positive click: then nothing grows).
 *   bright  = dwi > max(2, 0.5·seedZ)
 *             2: the "poorly conservative" outlier bound of Leys et al. (J Exp Soc Psychol 49:764,
 *             2013) — median + 2 robust SDs; looser than adc-dwi-v2's 3 because the click itself is
 *             the evidence that there is a lesion here. 0.5·seedZ: at least half the seed's own
 *             brightness above the median (a half-maximum edge, as for a full width at half
 *             maximum), so a very bright lesion does not bleed into a merely bright rim.
 *   core    = adc < clip(1.2·seedAdc, 620, 900)
 *             1.2: a stated choice, not from a paper — up to 20 % faster diffusion than the seed, for
 *             the ADC gradient from a lesion's centre to its rim. The clip bounds it with literature
 *             values: never below 620 (the ischemic-core threshold validated against final infarct,
 *             Purushotham et al., Int J Stroke 10:348, 2015; RAPID's default), so a very restricted
 *             seed still takes the whole core; never above 900 (the mean ADC of normal cortical grey
 *             matter, 0.89 ± 0.04 ×10⁻³ mm²/s — deep grey 0.75, white 0.70 — in 80 healthy adults,
 *             Helenius et al., AJNR 23:194, 2002), so whatever is clicked, nothing diffusing faster
 *             than normal cortex is taken: not edema (> 1000), not CSF (≈ 3000).
 *   tissue  = adc > 100          ×10⁻⁶ mm²/s: no tissue diffuses that slowly; lower values are
 *                                background or failed fits (as in adc-dwi-v2).
 *   notNeg  = ¬(negative > 0.5)  outside the negative Gaussians' half maximum (a radius of
 *                                σ·√(2 ln 2) ≈ 1.18σ = 3.5 mm around each negative click).
 *   candidate = bright ∧ core ∧ tissue ∧ notNeg
 *   grow:   r₀ = seed; r_{k+1} = max(r₀, MaxPool3(r_k)·candidate), K = 32 times (geodesic
 *           dilation in the candidate voxels, 26-connected); grown = r_K·candidate. So a region
 *           reaches at most 32 voxels (Chebyshev, along candidate voxels) from a click: the whole
 *           64 mm crop at 1 mm voxels and more. A click on a non-candidate voxel still grows into
 *           adjacent candidates (a click a voxel off a lesion's edge takes the lesion).
 *   keep    = max(previous, grown)
 *   remove: n₀ = negSeed; n_{k+1} = max(n₀, MaxPool3(n_k)·keep), K times; removed = n_K·keep: the
 *           connected piece of the mask at (or touching) a negative click, within the crop and 32
 *           voxels of it.
 *   probability = keep·(1 − removed)
 * MaxPool with kernel 3×3×3, stride 1 and pads of 1 on a [1,1,Z,Y,X] tensor is the 26-connected
 * dilation; every tensor in between keeps that shape (Gather on axis 1 with a 1-element index).
 */
import { FLOAT, floatTensor, int64Tensor, intAttr, intsAttr, node, onnx, tensorType, writeWhenRun } from '../onnx-graph.js';

export const CLICK_PEAK_MIN = 0.99;
export const DWI_ROBUST_Z_MIN = 2;
export const DWI_SEED_FRACTION = 0.5;
export const ADC_SEED_FACTOR = 1.2;
export const ADC_CORE_MICRO = 620;
export const ADC_NORMAL_GM_MAX_MICRO = 900;
export const ADC_TISSUE_MIN_MICRO = 100;
export const NEGATIVE_HALF_MAX = 0.5;
export const GROW_ITERATIONS = 32;

type Node = ReturnType<typeof node>;

/** K unrolled steps of r_{k+1} = max(r₀, MaxPool3(r_k) · mask); returns the name of r_K. */
function geodesicDilation(nodes: Node[], prefix: string, start: string, mask: string, iterations: number): string {
  let current = start;
  for (let k = 1; k <= iterations; k++) {
    const pooled = `${prefix}_pool_${k}`;
    const masked = `${prefix}_masked_${k}`;
    const next = `${prefix}_${k}`;
    nodes.push(
      node(
        'MaxPool',
        [current],
        [pooled],
        [intsAttr('kernel_shape', [3, 3, 3]), intsAttr('strides', [1, 1, 1]), intsAttr('pads', [1, 1, 1, 1, 1, 1])],
      ),
      node('Mul', [pooled, mask], [masked]),
      node('Max', [start, masked], [next]),
    );
    current = next;
  }
  return current;
}

export function buildClickGrowModel(): Uint8Array {
  const nodes: Node[] = [
    node('Gather', ['input', 'dwi_channel'], ['dwi'], [intAttr('axis', 1)]),
    node('Gather', ['input', 'adc_channel'], ['adc'], [intAttr('axis', 1)]),
    node('Gather', ['input', 'positive_channel'], ['positive'], [intAttr('axis', 1)]),
    node('Gather', ['input', 'negative_channel'], ['negative'], [intAttr('axis', 1)]),
    node('Gather', ['input', 'previous_channel'], ['previous'], [intAttr('axis', 1)]),
    // the clicked voxels
    node('Greater', ['positive', 'click_peak_min'], ['seed_bool']),
    node('Cast', ['seed_bool'], ['seed'], [intAttr('to', FLOAT)]),
    node('Greater', ['negative', 'click_peak_min'], ['neg_seed_bool']),
    node('Cast', ['neg_seed_bool'], ['neg_seed'], [intAttr('to', FLOAT)]),
    // the seed's mean DWI z-score and ADC (ReduceSum over all axes, keepdims: [1,1,1,1,1])
    node('ReduceSum', ['seed'], ['seed_count'], [intAttr('keepdims', 1)]),
    node('Max', ['seed_count', 'one'], ['seed_count_safe']),
    node('Mul', ['dwi', 'seed'], ['dwi_at_seed']),
    node('ReduceSum', ['dwi_at_seed'], ['dwi_seed_sum'], [intAttr('keepdims', 1)]),
    node('Div', ['dwi_seed_sum', 'seed_count_safe'], ['seed_z']),
    node('Mul', ['adc', 'seed'], ['adc_at_seed']),
    node('ReduceSum', ['adc_at_seed'], ['adc_seed_sum'], [intAttr('keepdims', 1)]),
    node('Div', ['adc_seed_sum', 'seed_count_safe'], ['seed_adc']),
    // candidate = bright ∧ core ∧ tissue ∧ ¬near a negative click
    node('Mul', ['seed_z', 'dwi_seed_fraction'], ['seed_z_part']),
    node('Max', ['seed_z_part', 'dwi_z_min'], ['dwi_threshold']),
    node('Greater', ['dwi', 'dwi_threshold'], ['bright']),
    node('Mul', ['seed_adc', 'adc_seed_factor'], ['seed_adc_part']),
    node('Clip', ['seed_adc_part', 'adc_core', 'adc_normal_gm_max'], ['adc_threshold']),
    node('Less', ['adc', 'adc_threshold'], ['core']),
    node('Greater', ['adc', 'adc_tissue_min'], ['tissue']),
    node('Greater', ['negative', 'negative_half_max'], ['near_negative']),
    node('Not', ['near_negative'], ['not_negative']),
    node('And', ['bright', 'core'], ['bright_core']),
    node('And', ['bright_core', 'tissue'], ['restricted']),
    node('And', ['restricted', 'not_negative'], ['candidate_bool']),
    node('Cast', ['candidate_bool'], ['candidate'], [intAttr('to', FLOAT)]),
  ];
  const reached = geodesicDilation(nodes, 'grow', 'seed', 'candidate', GROW_ITERATIONS);
  nodes.push(node('Mul', [reached, 'candidate'], ['grown']), node('Max', ['previous', 'grown'], ['keep']));
  const removedReach = geodesicDilation(nodes, 'remove', 'neg_seed', 'keep', GROW_ITERATIONS);
  nodes.push(
    node('Mul', [removedReach, 'keep'], ['removed']),
    node('Sub', ['one', 'removed'], ['retained']),
    node('Mul', ['keep', 'retained'], ['probability']),
  );

  const graph = onnx.GraphProto.create({
    name: 'click-grow-v1',
    input: [onnx.ValueInfoProto.create({ name: 'input', type: tensorType([1, 5, 'Z', 'Y', 'X']) })],
    output: [onnx.ValueInfoProto.create({ name: 'probability', type: tensorType([1, 1, 'Z', 'Y', 'X']) })],
    initializer: [
      int64Tensor('dwi_channel', [0]),
      int64Tensor('adc_channel', [1]),
      int64Tensor('positive_channel', [2]),
      int64Tensor('negative_channel', [3]),
      int64Tensor('previous_channel', [4]),
      floatTensor('one', [], [1]),
      floatTensor('click_peak_min', [], [CLICK_PEAK_MIN]),
      floatTensor('dwi_z_min', [], [DWI_ROBUST_Z_MIN]),
      floatTensor('dwi_seed_fraction', [], [DWI_SEED_FRACTION]),
      floatTensor('adc_seed_factor', [], [ADC_SEED_FACTOR]),
      floatTensor('adc_core', [], [ADC_CORE_MICRO]),
      floatTensor('adc_normal_gm_max', [], [ADC_NORMAL_GM_MAX_MICRO]),
      floatTensor('adc_tissue_min', [], [ADC_TISSUE_MIN_MICRO]),
      floatTensor('negative_half_max', [], [NEGATIVE_HALF_MAX]),
    ],
    node: nodes,
  });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'strokeview',
    producerVersion: '1',
    modelVersion: 1,
    docString:
      'click-grow-v1: from each positive click, 26-connected geodesic growth (32 steps) through DWI z > max(2, 0.5 seed z) AND ' +
      '100 < ADC < clip(1.2 seed ADC, 620, 900)e-6 mm2/s, away from negative clicks; added to the previous mask, then the piece ' +
      'at each negative click removed. Rule-based, not trained.',
    opsetImport: [{ domain: '', version: 13 }],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

writeWhenRun(import.meta.url, buildClickGrowModel);
