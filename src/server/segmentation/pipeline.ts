import { ROLE_LABELS, type VolumeRole } from '../../shared/cases.js';
import type { SegmentationMetrics } from '../../shared/models.js';
import type { AdcUnit, Affine } from '../../shared/nifti.js';
import { unprocessable } from '../errors.js';
import { sameGrid, voxelVolumeMl } from '../nifti/geometry.js';
import { NiftiError, type NiftiVolume, readNifti, toFloat32 } from '../nifti/read.js';
import { writeNiftiGz } from '../nifti/write.js';
import { adcScale, adcUnitNote, detectAdcUnit, implausibleAdcMessage } from './adc-unit.js';
import type { LesionList } from '../../shared/lesions.js';
import { lesionList } from '../lesions/list.js';
import { keepLargeComponents } from './components.js';
import { predictProbability, throwIfAborted } from './inference.js';
import { computeMetrics } from './metrics.js';
import { type LoadedModel, ort } from './models.js';
import { planModelGrid, usesModelGrid } from './model-grid.js';
import { applyPreprocessing } from './preprocess.js';
import { resampleTrilinear } from './resample.js';

export type Stage = 'load' | 'preprocess' | 'infer' | 'postprocess' | 'encode';

export interface Progress {
  stage: Stage;
  percent: number;
  message: string;
}

export interface PipelineOptions {
  /** The stored bytes of a case volume, or undefined when the case has none in that role. */
  read: (role: VolumeRole) => Promise<Uint8Array | undefined>;
  models: LoadedModel[];
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /**
   * Awaited as each stage begins (after its progress report): the worker checks for a cancel
   * there, and tests hold a job "still running" at a stage with a gate they release.
   */
  checkpoint?: (stage: Stage) => Promise<void>;
  /** Stage timings, for the benchmark. */
  timings?: Partial<Record<Stage, number>>;
}

export interface PipelineResult {
  dims: [number, number, number];
  affine: Affine;
  voxelSizeMm: [number, number, number];
  /** The final mask (majority vote when several models ran), uint8 on the DWI grid. */
  mask: Uint8Array;
  maskNifti: Buffer;
  perModel: { modelId: string; mask: Uint8Array; maskNifti: Buffer }[];
  metrics: SegmentationMetrics;
  /** What the pipeline noticed about the inputs (the ADC unit it found and how it converted it). */
  notes: string[];
  /** The mask's lesions, TP/FP/FN against the truth (lesions/list.ts). */
  lesions: LesionList;
}

/**
 * The case volumes a run of these models reads: the DWI (the grid), the models' inputs, the ADC
 * even when no model takes it (the lesion list reports each lesion's ADC) and the ground truth
 * (the metrics). The worker fetches only these: on an object store every volume is a GET, and a
 * FLAIR no model reads was a third of a demo job's input bytes.
 */
export function rolesRead(models: Pick<LoadedModel, 'manifest'>[]): Set<VolumeRole> {
  return new Set<VolumeRole>(['dwi', ...models.flatMap((m) => m.manifest.inputs), 'adc', 'mask']);
}

/**
 * One segmentation: read the case's volumes → resample ADC/FLAIR onto the DWI grid when they are
 * elsewhere → preprocess per manifest → infer (sliding window or whole volume) → threshold, drop
 * small components → majority vote across models → metrics against the ground truth. Progress:
 * load 10, preprocess 20, infer 30–85 by patch, postprocess 90, encode 95. Cancellable between
 * stages and patches through the AbortSignal.
 */
export async function runPipeline(opts: PipelineOptions): Promise<PipelineResult> {
  const { models, signal } = opts;
  if (models.length === 0) throw unprocessable('No model to run');
  // After each report the pipeline yields to the event loop once, so the progress write and its
  // event go out before the next synchronous stage (with the worker in the API's thread, that is
  // what keeps live progress live).
  const report = async (stage: Stage, percent: number, message: string) => {
    opts.onProgress?.({ stage, percent, message });
    await new Promise<void>((resolve) => setImmediate(resolve));
  };
  const enter = async (stage: Stage, percent: number, message: string) => {
    await report(stage, percent, message);
    await opts.checkpoint?.(stage);
    throwIfAborted(signal);
  };
  let t = performance.now();
  const lap = (stage: Stage) => {
    const now = performance.now();
    if (opts.timings) opts.timings[stage] = (opts.timings[stage] ?? 0) + (now - t);
    t = now;
  };

  // load
  await enter('load', 10, 'Reading volumes');
  const inputs = new Set<VolumeRole>(models.flatMap((m) => m.manifest.inputs));
  const needed = rolesRead(models);
  const volumes = new Map<VolumeRole, NiftiVolume>();
  for (const role of needed) {
    const bytes = await opts.read(role);
    if (!bytes) {
      if (role === 'mask' || (!inputs.has(role) && role !== 'dwi')) continue;
      const which = models.filter((m) => m.manifest.inputs.includes(role as 'dwi')).map((m) => m.manifest.id);
      throw unprocessable(`This case has no ${ROLE_LABELS[role]}${which.length ? `, which model ${which.join(', ')} needs` : ''}`);
    }
    try {
      volumes.set(role, readNifti(bytes));
    } catch (err) {
      if (err instanceof NiftiError) throw unprocessable(`${ROLE_LABELS[role]}: ${err.message}`);
      throw err;
    }
  }
  lap('load');
  throwIfAborted(signal);

  // The ADC's unit, from its values: models state the unit their thresholds assume, and a map in
  // another unit is converted (ISLES'22 ships 10⁻³ mm²/s; the ISLES convention is 10⁻⁶).
  const notes: string[] = [];
  const adcVol = volumes.get('adc');
  let adcUnit: AdcUnit | undefined;
  if (adcVol) {
    const found = detectAdcUnit(toFloat32(adcVol));
    if (!found.unit) throw unprocessable(implausibleAdcMessage(found.median));
    adcUnit = found.unit;
    for (const wanted of new Set(models.filter((m) => m.manifest.inputs.includes('adc')).map((m) => m.manifest.adcUnit))) {
      notes.push(adcUnitNote(found.unit, wanted));
    }
  }

  // preprocess
  await enter('preprocess', 20, notes.length ? `Preparing inputs (${notes.join('; ')})` : 'Preparing inputs');
  const dwi = volumes.get('dwi')!;
  const grid = { dims: dwi.dims, affine: dwi.affine };
  const onGrid = new Map<VolumeRole, Float32Array>();
  let truthMask: Uint8Array | null = null;
  const truthVol = volumes.get('mask');
  if (truthVol && sameGrid(grid, { dims: truthVol.dims, affine: truthVol.affine })) {
    // on the DWI grid: binarise the stored values directly, no float copy. Nonzero is lesion, as
    // the challenge's scoring reads a mask (`astype(bool)`): labels 1, 2, 255 all count.
    const raw = truthVol.data;
    const { slope, inter } = truthVol.scale;
    truthMask = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) if (raw[i]! * slope + inter !== 0) truthMask[i] = 1;
  }
  for (const [role, vol] of volumes) {
    if (role === 'mask' && truthMask) continue;
    let values = toFloat32(vol);
    if (role !== 'dwi' && !sameGrid(grid, { dims: vol.dims, affine: vol.affine })) {
      // a grid that cannot be resampled onto the DWI's is the case's problem: unprocessable, the job fails
      values = resampleTrilinear(values, vol.dims, vol.affine, dwi.dims, dwi.affine, ROLE_LABELS[role]);
    }
    if (role === 'mask') {
      truthMask = new Uint8Array(values.length);
      // resampled by trilinear interpolation: a voxel is lesion when it is at least half inside
      for (let i = 0; i < values.length; i++) if (values[i]! >= 0.5) truthMask[i] = 1;
      continue;
    }
    onGrid.set(role, values);
  }
  const prepared = new Map<string, Float32Array>();
  /** A model's input channel on the DWI grid in the model's ADC unit (not yet normalised). */
  const rawChannel = (m: LoadedModel, role: VolumeRole) => {
    const scale = role === 'adc' && adcUnit ? adcScale(adcUnit, m.manifest.adcUnit) : 1;
    const values = onGrid.get(role)!;
    return scale !== 1 ? values.map((v) => v * scale) : values;
  };
  // Per model: its channels on the grid it runs on. Without a model grid (#25: orientation,
  // spacing, crop) that is the DWI grid, and identical channels are shared across an ensemble.
  const runs = models.map((m) => {
    if (usesModelGrid(m.manifest)) {
      const grid = planModelGrid(
        m.manifest,
        dwi.dims,
        dwi.affine,
        dwi.voxelSizeMm,
        m.manifest.inputs.map((role) => rawChannel(m, role)),
      );
      return { dims: grid.dims, channels: m.manifest.inputs.map((_, c) => grid.toModel(c)), back: grid.fromModel };
    }
    const channels = m.manifest.inputs.map((role, c) => {
      const step = m.manifest.preprocessing[c]!;
      const scale = role === 'adc' && adcUnit ? adcScale(adcUnit, m.manifest.adcUnit) : 1;
      const key = `${role}:${scale}:${JSON.stringify(step)}`;
      if (!prepared.has(key)) prepared.set(key, applyPreprocessing(rawChannel(m, role), step));
      return prepared.get(key)!;
    });
    return { dims: dwi.dims, channels, back: (p: Float32Array) => p };
  });
  lap('preprocess');
  throwIfAborted(signal);

  // infer
  const probabilities: Float32Array[] = [];
  for (const [mi, model] of models.entries()) {
    const span = 55 / models.length;
    const base = 30 + mi * span;
    await enter('infer', Math.round(base), `Running ${model.manifest.name}`);
    const run = runs[mi]!;
    probabilities.push(
      run.back(
        await predictProbability({
          session: model.session,
          tensor: ort.Tensor,
          manifest: model.manifest,
          channels: run.channels,
          dims: run.dims,
          signal,
          onPatch: (done, total) =>
            void report('infer', Math.round(base + (span * done) / total), `${model.manifest.name}: patch ${done} of ${total}`),
        }),
      ),
    );
    throwIfAborted(signal);
  }
  lap('infer');

  // postprocess
  await enter('postprocess', 90, 'Thresholding and cleaning up');
  const voxelMl = voxelVolumeMl(dwi.voxelSizeMm);
  const kept = models.map((m, mi) => {
    const p = probabilities[mi]!;
    const threshold = m.manifest.threshold;
    const binary = new Uint8Array(p.length);
    for (let i = 0; i < p.length; i++) if (p[i]! >= threshold) binary[i] = 1;
    return keepLargeComponents(binary, dwi.dims, Math.ceil(m.manifest.minLesionMl / voxelMl));
  });
  const perModelMasks = kept.map((k) => k.mask);
  let mask: Uint8Array;
  if (perModelMasks.length === 1) {
    mask = perModelMasks[0]!;
  } else {
    // Majority vote: a voxel is lesion when more than half of the models say so.
    mask = new Uint8Array(perModelMasks[0]!.length);
    const need = Math.floor(perModelMasks.length / 2) + 1;
    for (let i = 0; i < mask.length; i++) {
      let votes = 0;
      for (const m of perModelMasks) votes += m[i]!;
      if (votes >= need) mask[i] = 1;
    }
  }
  const labeling = kept.length === 1 ? kept[0] : undefined;
  const metrics = computeMetrics(mask, truthMask, dwi.dims, dwi.voxelSizeMm, labeling);
  const lesions = lesionList({
    mask,
    truth: truthMask,
    dims: dwi.dims,
    affine: dwi.affine,
    voxelSizeMm: dwi.voxelSizeMm,
    dwi: onGrid.get('dwi')!,
    adc: onGrid.get('adc') ?? null,
    adcUnit: adcUnit ?? null,
    ...(labeling ? { labeling } : {}),
  });
  lap('postprocess');
  throwIfAborted(signal);

  // encode (the caller stores the files)
  await enter('encode', 95, 'Encoding the mask');
  const encode = (m: Uint8Array) =>
    writeNiftiGz({ dims: dwi.dims, affine: dwi.affine, datatype: 'uint8', data: m, description: 'strokeview lesion mask' });
  const maskNifti = encode(mask);
  const perModel = models.map((m, mi) => ({
    modelId: m.manifest.id,
    mask: perModelMasks[mi]!,
    maskNifti: models.length === 1 ? maskNifti : encode(perModelMasks[mi]!),
  }));
  lap('encode');
  return { dims: dwi.dims, affine: dwi.affine, voxelSizeMm: dwi.voxelSizeMm, mask, maskNifti, perModel, metrics, notes, lesions };
}
