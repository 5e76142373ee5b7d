import type { DicomImport, DicomSeries, SeriesChoice } from '../../shared/dicom.js';
import type { DicomRole } from '../../shared/dicom-origin.js';
import type { Affine } from '../../shared/nifti.js';
import { unprocessable } from '../errors.js';
import { NiftiError, readNifti, toFloat32 } from '../nifti/read.js';
import { encodeNifti } from '../nifti/write.js';
import { cpuTask } from '../workers/task.js';
import { type Frame, type Scale, traceAndAdc } from './compute.js';
import { type Dcm2niixOutput, runDcm2niix } from './dcm2niix.js';
import { type ConvertedOutput, type ConvertedSeries, type RoleDecision, chooseRoles, roleSource, sidecarFacts } from './roles.js';
import { inputKey } from './input-file.js';
import type { InputFile, ScannedImage } from './scan.js';
import { type SeriesFacts, type SliceRef, dot, groupSeries, sliceNormal } from './series.js';

/**
 * The CPU task that turns one study's DICOM images into a case's volumes: dcm2niix converts
 * every series, the roles are chosen (roles.ts), the trace DWI and the ADC are computed when the
 * scanner did not make them (compute.ts), and each volume is written as a fresh NIfTI whose header
 * carries nothing from the DICOM but the geometry. Also returns, per role, the source series' UIDs
 * and SOP instances slice by slice in the stored volume's order — what a DICOM SEG references.
 */

/** The source of a role, as `case_dicom.series` keeps it. */
export interface StoredDicomSeries {
  role: DicomRole;
  how: 'computed' | 'scanner';
  seriesInstanceUid: string;
  seriesNumber: number | null;
  sopClassUid: string;
  frameOfReferenceUid: string | null;
  geometry: {
    rows: number;
    columns: number;
    pixelSpacing: number[] | null;
    sliceThickness: number | null;
    imageOrientationPatient: number[] | null;
  };
  /** Slice k of the stored volume (k = 0 first): its position and the source images there. */
  slices: { imagePositionPatient: number[] | null; refs: SliceRef[] }[];
}

export interface ConvertInput {
  /** The study's MR image files, in scan order (`images[].file` indexes them). */
  files: InputFile[];
  images: ScannedImage[];
  choice: SeriesChoice;
  /** Identifying strings (from the headers) removed from every text this returns. */
  scrub: string[];
  maxVoxels: number;
  /**
   * dcm2niix's output when it already ran — beside the header scan, over every file of the upload
   * (`inputs`, in the order it was given them, non-images included). Otherwise it runs here, over `files`.
   */
  converted?: Dcm2niixOutput & { inputs: InputFile[] };
}

export interface ConvertResult {
  report: Omit<DicomImport, 'skipped' | 'timings'>;
  /** `.nii` bytes by role. */
  volumes: Partial<Record<DicomRole, Uint8Array>>;
  stored: StoredDicomSeries[];
  frameOfReferenceUid: string | null;
  /** A name for the case: the DWI source series' description. */
  suggestedName: string;
  convertMs: number;
}

/** Replaces every identifying string in a text. */
export function scrubText(text: string, identifiers: readonly string[]): string {
  let out = text;
  for (const id of identifiers) {
    if (id.length >= 3) out = out.replace(new RegExp(id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gi'), '[removed]');
  }
  return out;
}

/**
 * dcm2niix's lines a person should read: warnings and errors, with `/in/<n>` turned into the upload's
 * file names. Lines only about files outside the study (`inStudy`: objects the scan skipped, which
 * dcm2niix saw when it ran beside the scan) are dropped: the skipped list says what they are.
 */
export function converterWarnings(lines: readonly string[], files: readonly InputFile[], inStudy = (_: InputFile) => true): string[] {
  const noise =
    /^(Chris Rorden's|Found \d+ DICOM|Convert \d+ DICOM|Conversion required|Philips Scaling Values|Compression will be faster|\s*$)/;
  const out: string[] = [];
  for (const raw of lines) {
    if (noise.test(raw)) continue;
    const about = [...raw.matchAll(/\/in\/(\d+)/g)].map((m) => files[Number(m[1])]);
    if (about.length > 0 && about.every((f) => f && !inStudy(f))) continue;
    const line = raw.replace(/\/in\/(\d+)/g, (_, i: string) => files[Number(i)]?.name ?? 'a file').replace(/\/out\/[^\s)]+/g, 'the output');
    if (!out.includes(line)) out.push(line.trim());
  }
  return out.slice(0, 50);
}

function parseBvals(bytes: Uint8Array | undefined): number[] | null {
  if (!bytes) return null;
  const values = Buffer.from(bytes).toString('utf8').trim().split(/\s+/).map(Number);
  return values.length > 0 && values.every(Number.isFinite) ? values : null;
}

/** dcm2niix's outputs grouped by the series they came from (the output stem starts with the SeriesInstanceUID). */
function outputsBySeries(files: Record<string, Uint8Array>, series: SeriesFacts[], maxVoxels: number): Map<string, ConvertedOutput[]> {
  const out = new Map<string, ConvertedOutput[]>();
  const uids = series.map((s) => s.seriesUid).sort((a, b) => b.length - a.length);
  for (const [name, bytes] of Object.entries(files)) {
    if (!name.endsWith('.nii')) continue;
    const stem = name.slice(0, -4);
    const uid = uids.find((u) => stem.startsWith(`${u}_`));
    if (!uid) continue;
    let head;
    try {
      head = readNifti(bytes, { frame: 0, maxVoxels });
    } catch (err) {
      if (err instanceof NiftiError) continue;
      throw err;
    }
    let sidecar = {};
    try {
      sidecar = sidecarFacts(JSON.parse(Buffer.from(files[`${stem}.json`] ?? []).toString('utf8')));
    } catch {
      // no sidecar: the roles go by b-values and the headers
    }
    const list = out.get(uid) ?? [];
    list.push({
      stem,
      dims: head.dims,
      volumes: head.frames,
      affine: head.affine,
      bValues: parseBvals(files[`${stem}.bval`]),
      sidecar,
    });
    out.set(uid, list);
  }
  return out;
}

/** The frames of a converted output as stored (views into the file where aligned, no float copies) and their scaling. */
function framesOf(bytes: Uint8Array, maxVoxels: number): { frames: Frame[]; scale: Scale } {
  const head = readNifti(bytes, { frame: 0, maxVoxels });
  const frames = Array.from({ length: head.frames }, (_, f) => (f === 0 ? head.data : readNifti(bytes, { frame: f, maxVoxels }).data));
  return { frames, scale: head.scale };
}

const encode = (o: ConvertedOutput, data: Float32Array, description: string) =>
  new Uint8Array(encodeNifti({ dims: o.dims, affine: o.affine, datatype: 'float32', data, description }));

/** Maps the stored volume's slices (k) to the series' slice positions, from the NIfTI affine (RAS) and the slice normal (LPS). */
function slicesInVolumeOrder(facts: SeriesFacts, dims: [number, number, number], affine: Affine): StoredDicomSeries['slices'] {
  const normal = sliceNormal(facts.iop);
  const refsOf = (p: SeriesFacts['positions'][number]) =>
    p.refs.map((r) => ({ sopInstanceUid: r.sopInstanceUid, ...(r.frameNumber ? { frameNumber: r.frameNumber } : {}) }));
  if (!normal || facts.positions.length !== dims[2]) {
    return facts.positions.map((p) => ({ imagePositionPatient: p.imagePositionPatient, refs: refsOf(p) }));
  }
  const spacing = facts.positions.length > 1 ? Math.abs(facts.positions[1]!.distance - facts.positions[0]!.distance) : 1;
  return Array.from({ length: dims[2] }, (_, k) => {
    const ras = [0, 1, 2].map((r) => affine[r]![2]! * k + affine[r]![3]!);
    const d = dot([-ras[0]!, -ras[1]!, ras[2]!], normal);
    let best = facts.positions[0]!;
    for (const p of facts.positions) if (Math.abs(p.distance - d) < Math.abs(best.distance - d)) best = p;
    if (Math.abs(best.distance - d) > spacing / 2 + 0.01) return { imagePositionPatient: null, refs: [] };
    return { imagePositionPatient: best.imagePositionPatient, refs: refsOf(best) };
  });
}

export async function convertDicomStudy(input: ConvertInput): Promise<ConvertResult> {
  const facts = groupSeries(input.images);
  const scrub = (t: string) => scrubText(t, input.scrub);
  const converted = input.converted ?? { ...(await runDcm2niix(input.files)), inputs: input.files };
  const studyFiles = new Set(input.files.map(inputKey));
  const warnings = converterWarnings(converted.lines, converted.inputs, (f) => studyFiles.has(inputKey(f))).map(scrub);
  const bySeries = outputsBySeries(converted.files, facts, input.maxVoxels);
  const series: ConvertedSeries[] = facts.map((f) => ({
    seriesUid: f.seriesUid,
    seriesNumber: f.seriesNumber,
    description: scrub(f.description),
    images: f.images,
    imageType: f.imageType,
    problem: f.problem ? scrub(f.problem) : null,
    outputs: bySeries.get(f.seriesUid) ?? [],
  }));
  const problems = facts.flatMap((f) => (f.problem ? [scrub(f.problem)] : []));
  if (series.every((s) => s.outputs.length === 0)) {
    const said = warnings.length ? ` dcm2niix said: ${warnings.slice(0, 4).join(' ')}` : '';
    throw unprocessable(
      `No DWI in the study: dcm2niix converted nothing from it.${problems.length ? ` ${problems.join('; ')}.` : ''}${said}`,
      {
        field: 'files',
      },
    );
  }
  const roles: RoleDecision = chooseRoles(series, input.choice, { warnings });
  warnings.unshift(...problems);

  const bytesOf = (o: ConvertedOutput) => converted.files[`${o.stem}.nii`]!;
  const volumes: ConvertResult['volumes'] = {};
  const computedFrom = new Map<string, ReturnType<typeof traceAndAdc>>();
  const compute = (o: ConvertedOutput) => {
    let r = computedFrom.get(o.stem);
    if (!r) {
      const { frames, scale } = framesOf(bytesOf(o), input.maxVoxels);
      r = traceAndAdc(frames, o.bValues!, o.dims, scale);
      computedFrom.set(o.stem, r);
    }
    return r;
  };
  const { dwi, adc, flair } = roles;
  if (dwi.how === 'computed') {
    volumes.dwi = encode(dwi.output, compute(dwi.output).trace, 'strokeview: trace DWI computed from DICOM');
  } else {
    // The scanner's trace: its highest-b volume (a TRACEW series often holds b = 0 and b = 1000).
    const b = dwi.output.bValues;
    const frame = b && b.length === dwi.output.volumes ? b.indexOf(Math.max(...b)) : dwi.output.volumes - 1;
    volumes.dwi = encode(
      dwi.output,
      toFloat32(readNifti(bytesOf(dwi.output), { frame, maxVoxels: input.maxVoxels })),
      'strokeview: scanner trace DWI from DICOM',
    );
  }
  volumes.adc =
    adc.how === 'computed'
      ? encode(adc.output, compute(adc.output).adc, 'strokeview: ADC computed from DICOM, 1e-6 mm2/s')
      : encode(
          adc.output,
          toFloat32(readNifti(bytesOf(adc.output), { frame: 0, maxVoxels: input.maxVoxels })),
          'strokeview: scanner ADC from DICOM',
        );
  if (flair) {
    volumes.flair = encode(
      flair.output,
      toFloat32(readNifti(bytesOf(flair.output), { maxVoxels: input.maxVoxels })),
      'strokeview: FLAIR from DICOM',
    );
  }

  const storedOf = (role: DicomRole, s: ConvertedSeries, o: ConvertedOutput, how: 'computed' | 'scanner'): StoredDicomSeries => {
    const f = facts.find((x) => x.seriesUid === s.seriesUid)!;
    return {
      role,
      how,
      seriesInstanceUid: f.seriesUid,
      seriesNumber: f.seriesNumber,
      sopClassUid: f.sopClassUid,
      frameOfReferenceUid: f.frameOfReferenceUid,
      geometry: {
        rows: f.rows,
        columns: f.columns,
        pixelSpacing: f.pixelSpacing,
        sliceThickness: f.sliceThickness,
        imageOrientationPatient: f.iop,
      },
      slices: slicesInVolumeOrder(f, o.dims, o.affine),
    };
  };
  const stored = [storedOf('dwi', dwi.series, dwi.output, dwi.how), storedOf('adc', adc.series, adc.output, adc.how)];
  if (flair) stored.push(storedOf('flair', flair.series, flair.output, 'scanner'));
  if (stored[0]!.slices.some((s) => s.refs.length === 0)) {
    warnings.push(
      'Some slices of the DWI could not be matched to their source images; a DICOM SEG of this case may not reference every slice',
    );
  }

  const rows: DicomSeries[] = series.map((s) => {
    const note = roles.notes.get(s.seriesUid)!;
    const o = s === dwi.series ? dwi.output : s === adc.series ? adc.output : s === flair?.series ? flair.output : s.outputs[0];
    return {
      seriesInstanceUid: s.seriesUid,
      seriesNumber: s.seriesNumber,
      description: s.description,
      kind: note.kind,
      dims: o ? o.dims : null,
      volumes: o?.volumes ?? 0,
      bValues: note.bValues,
      images: s.images,
      role: note.role,
      reason: scrub(note.reason),
    };
  });
  const studyInstanceUid = input.images[0]!.studyUid;
  return {
    report: {
      studyInstanceUid,
      series: rows,
      roles: {
        dwi: { ...roleSource(dwi), reason: scrub(dwi.reason) },
        adc: { ...roleSource(adc), reason: scrub(adc.reason) },
        flair: flair ? { ...roleSource({ ...flair, how: 'scanner' }), reason: scrub(flair.reason) } : null,
      },
      warnings,
    },
    volumes,
    stored,
    frameOfReferenceUid: facts.find((f) => f.seriesUid === dwi.series.seriesUid)?.frameOfReferenceUid ?? null,
    suggestedName: scrub(dwi.series.description) || `DICOM series ${dwi.series.seriesNumber ?? ''}`.trim(),
    convertMs: converted.ms,
  };
}
export const convertDicomStudyTask = cpuTask<ConvertInput, ConvertResult>(import.meta.url, 'convertDicomStudy');
