import type { DicomRole, RoleSource, SeriesChoice, SeriesKind } from '../../shared/dicom.js';
import type { Affine } from '../../shared/nifti.js';
import { unprocessable } from '../errors.js';
import { sameGrid } from '../nifti/geometry.js';
import { B0_MAX, diffusionShells } from './compute.js';

/**
 * Which converted series becomes which role, and why — from the BIDS sidecar's sequence facts
 * and the b-values. Pure: the converter's outputs in, a decision with a sentence per series out.
 *
 * - A scanner's own trace (ImageType TRACEW/TRACE, or a description saying so) is the DWI as it
 *   is, and its ADC series (ImageType ADC) the ADC — when both are there.
 * - Otherwise a diffusion series with b ≈ 0 and b ≥ 400 volumes gives the trace DWI and the ADC,
 *   both computed (compute.ts). A scanner ADC on the DWI's grid is preferred to a computed one.
 * - FLAIR: an inversion-recovery sequence with a long inversion time (TI ≥ 1.5 s) and a long TE,
 *   or a description or protocol name saying FLAIR.
 * - Among several candidates, the latest (highest series number): a repeat is usually the better
 *   one. The caller may pick others (`series`).
 */

/** The fields of dcm2niix's BIDS sidecar the import reads — nothing else from it is kept anywhere. */
export const SIDECAR_FIELDS = [
  'ImageType',
  'SeriesDescription',
  'ProtocolName',
  'ScanningSequence',
  'SequenceVariant',
  'SequenceName',
  'PulseSequenceName',
  'InversionTime',
  'EchoTime',
  'RepetitionTime',
  'MRAcquisitionType',
  'Manufacturer',
  'MagneticFieldStrength',
] as const;
export type SidecarFacts = Partial<Record<(typeof SIDECAR_FIELDS)[number], unknown>>;

/** Keeps only the allowlisted sidecar fields (dcm2niix's sidecar also names the institution, the device, times). */
export function sidecarFacts(json: unknown): SidecarFacts {
  const out: SidecarFacts = {};
  if (!json || typeof json !== 'object') return out;
  for (const k of SIDECAR_FIELDS) {
    const v = (json as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** One converted output (a NIfTI dcm2niix wrote) of a series. */
export interface ConvertedOutput {
  stem: string;
  dims: [number, number, number];
  volumes: number;
  affine: Affine;
  bValues: number[] | null;
  sidecar: SidecarFacts;
}

export interface ConvertedSeries {
  seriesUid: string;
  seriesNumber: number | null;
  description: string;
  images: number;
  imageType: string[];
  /** From the headers (series.ts): missing images, mixed orientations. */
  problem: string | null;
  outputs: ConvertedOutput[];
}

export interface Classified {
  kind: SeriesKind;
  output: ConvertedOutput | null;
  why: string;
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : typeof v === 'string' ? v.split(/[\\ ]+/) : []);
const upper = (v: string[]) => v.map((s) => s.toUpperCase());
const round = (b: number) => (b <= B0_MAX ? 0 : Math.round(b));
const distinctB = (b: number[] | null) => [...new Set((b ?? []).map(round))].sort((x, y) => x - y);

function describeB(b: number[]): string {
  const counts = new Map<number, number>();
  for (const x of b) counts.set(round(x), (counts.get(round(x)) ?? 0) + 1);
  return [...counts]
    .sort(([a], [c]) => a - c)
    .map(([v, n]) => `b = ${v} (${n})`)
    .join(', ');
}

/**
 * The derived ADC series a PACS push stored (dicom/adc-series.ts: Manufacturer "strokeview",
 * SeriesDescription "strokeview ADC …"). A study pulled again after a push holds it; the import
 * computes the ADC again from the diffusion series rather than take its own rounded copy, so a
 * study gives the same case before and after a push.
 */
function isOwnDerivedAdc(series: Pick<ConvertedSeries, 'description'>, out: ConvertedOutput): boolean {
  return String(out.sidecar.Manufacturer ?? '').toLowerCase() === 'strokeview' || /^strokeview ADC\b/.test(series.description);
}

/** What one output is, with the facts that say so. */
export function classifyOutput(
  series: Pick<ConvertedSeries, 'description' | 'imageType'>,
  out: ConvertedOutput,
): Omit<Classified, 'output'> {
  const imageType = upper([...strings(out.sidecar.ImageType), ...series.imageType]);
  const text = `${series.description} ${String(out.sidecar.ProtocolName ?? '')} ${String(out.sidecar.SeriesDescription ?? '')}`;
  if (isOwnDerivedAdc(series, out)) {
    return { kind: 'adc', why: "strokeview's own derived ADC (sent with a SEG before; the ADC is computed again unless it is chosen)" };
  }
  if (imageType.includes('ADC') || /(^|[^a-z])adc([^a-z]|$)|apparent diffusion/i.test(text) || /_ADC$/i.test(out.stem)) {
    return {
      kind: 'adc',
      why: imageType.includes('ADC') ? "the scanner's ADC map (ImageType ADC)" : "the scanner's ADC map (by its description)",
    };
  }
  if (imageType.some((t) => t === 'TRACEW' || t === 'TRACE' || t === 'ISOTROPIC') || /trace|isotropic/i.test(text)) {
    return {
      kind: 'trace',
      why: `the scanner's trace image (${imageType.includes('TRACEW') ? 'ImageType TRACEW' : 'trace'}${out.bValues ? `, ${describeB(out.bValues)}` : ''})`,
    };
  }
  const shells = out.bValues ? diffusionShells(out.bValues) : null;
  if (shells && out.volumes >= 2) {
    return { kind: 'diffusion', why: `a diffusion series: ${describeB(out.bValues!)}` };
  }
  if (out.bValues && out.bValues.length > 0 && Math.max(...out.bValues) > B0_MAX) {
    return { kind: 'other', why: `diffusion-weighted, but without both b ≈ 0 and b ≥ 400 volumes (${describeB(out.bValues)})` };
  }
  const seq = upper(strings(out.sidecar.ScanningSequence));
  const ti = Number(out.sidecar.InversionTime);
  const te = Number(out.sidecar.EchoTime);
  if (seq.includes('IR') && ti >= 1.5 && !(te < 0.06)) {
    return {
      kind: 'flair',
      why: `FLAIR: inversion recovery, TI ${ti.toFixed(2)} s${Number.isFinite(te) ? `, TE ${Math.round(te * 1000)} ms` : ''}`,
    };
  }
  if (/flair|dark[-_ ]?fluid/i.test(text)) return { kind: 'flair', why: 'FLAIR (by its description)' };
  return { kind: 'other', why: 'not a diffusion, trace, ADC or FLAIR series' };
}

/** A series' kind: that of its most telling output (diffusion > trace > adc > flair > other). */
export function classifySeries(s: ConvertedSeries): Classified {
  if (s.outputs.length === 0) return { kind: 'other', output: null, why: 'dcm2niix converted nothing from it' };
  const order: SeriesKind[] = ['diffusion', 'trace', 'adc', 'flair', 'other'];
  const all = s.outputs.map((o) => ({ ...classifyOutput(s, o), output: o }));
  return all.sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind))[0]!;
}

export interface RoleDecision {
  dwi: { series: ConvertedSeries; output: ConvertedOutput; how: 'computed' | 'scanner'; reason: string };
  adc: { series: ConvertedSeries; output: ConvertedOutput; how: 'computed' | 'scanner'; reason: string };
  flair: { series: ConvertedSeries; output: ConvertedOutput; reason: string } | null;
  /** Per series uid: its kind and the sentence saying what became of it. */
  notes: Map<string, { kind: SeriesKind; role: DicomRole | null; reason: string; bValues: number[] }>;
}

const nameOf = (s: ConvertedSeries) => `series ${s.seriesNumber ?? '?'}${s.description ? ` (${s.description})` : ''}`;

function pick(all: ConvertedSeries[], ref: string, role: string): ConvertedSeries {
  const found = all.find((s) => s.seriesUid === ref || String(s.seriesNumber) === ref);
  if (!found) {
    throw unprocessable(
      `The series chosen for ${role} (${ref}) is not in the study; it has ${all.map((s) => s.seriesNumber ?? s.seriesUid).join(', ')}`,
      {
        field: 'series',
      },
    );
  }
  if (found.problem) throw unprocessable(`The series chosen for ${role} cannot be used: ${found.problem}`, { field: 'series' });
  return found;
}

const latest = <T extends { series: ConvertedSeries }>(list: T[]): T | undefined =>
  [...list].sort((a, b) => (b.series.seriesNumber ?? 0) - (a.series.seriesNumber ?? 0))[0];

/** Decides the roles; throws a 422 naming what was found when no DWI (or no ADC) can be had. */
export function chooseRoles(all: ConvertedSeries[], choice: SeriesChoice, extra: { warnings: string[] } = { warnings: [] }): RoleDecision {
  const classified = all.map((series) => ({ series, ...classifySeries(series) }));
  const usable = classified.filter((c) => !c.series.problem && c.output);
  const of = (kind: SeriesKind) => usable.filter((c) => c.kind === kind) as ((typeof usable)[number] & { output: ConvertedOutput })[];
  const found = () => classified.map((c) => `${nameOf(c.series)}: ${c.series.problem ?? c.why}`).join('; ');

  // DWI
  let dwi: RoleDecision['dwi'];
  if (choice.dwi) {
    const s = pick(all, choice.dwi, 'DWI');
    const c = classified.find((x) => x.series === s)!;
    if ((c.kind !== 'diffusion' && c.kind !== 'trace') || !c.output) {
      throw unprocessable(`The series chosen for DWI, ${nameOf(s)}, is not a diffusion or trace series (${c.why})`, { field: 'series' });
    }
    dwi = { series: s, output: c.output, how: c.kind === 'trace' ? 'scanner' : 'computed', reason: '' };
  } else {
    const trace = latest(of('trace').filter((c) => (c.output.bValues ? Math.max(...c.output.bValues) >= 400 : true)));
    const diffusion = latest(of('diffusion'));
    const chosen = trace ?? diffusion;
    if (!chosen) {
      const hint = extra.warnings.length ? ` dcm2niix said: ${extra.warnings.slice(0, 4).join(' ')}` : '';
      throw unprocessable(
        `No DWI in the study: no usable diffusion or trace series. Found ${all.length} series — ${found() || 'none'}.${hint}`,
        {
          field: 'files',
        },
      );
    }
    dwi = { series: chosen.series, output: chosen.output, how: chosen === trace ? 'scanner' : 'computed', reason: '' };
  }
  const dwiShells = dwi.output.bValues ? diffusionShells(dwi.output.bValues) : null;
  dwi.reason =
    dwi.how === 'computed'
      ? `trace DWI computed from ${nameOf(dwi.series)}: the geometric mean of its ${dwiShells!.high.length} b = ${Math.round(dwiShells!.b)} images`
      : `${nameOf(dwi.series)} used as it is: the scanner's trace${dwi.output.volumes > 1 ? ` (its highest-b volume)` : ''}`;

  // ADC
  const onDwiGrid = (o: ConvertedOutput) =>
    sameGrid({ dims: o.dims, affine: o.affine }, { dims: dwi.output.dims, affine: dwi.output.affine });
  const computedFrom = (): RoleDecision['adc'] | undefined => {
    const source =
      dwi.how === 'computed' ? { series: dwi.series, output: dwi.output } : latest(of('diffusion').filter((c) => onDwiGrid(c.output)));
    if (!source) return undefined;
    const sh = diffusionShells(source.output.bValues!)!;
    return {
      series: source.series,
      output: source.output,
      how: 'computed',
      reason: `ADC computed from ${nameOf(source.series)}: ln(S_b0 / S_b) / b with b = ${Math.round(sh.b)} s/mm², in 10⁻⁶ mm²/s, inside the head`,
    };
  };
  let adc: RoleDecision['adc'] | undefined;
  if (choice.adc === 'computed') {
    adc = computedFrom();
    if (!adc)
      throw unprocessable(
        'An ADC can be computed only from a diffusion series with b ≈ 0 and b ≥ 400 volumes on the DWI grid; the study has none',
        { field: 'series' },
      );
  } else if (choice.adc) {
    const s = pick(all, choice.adc, 'ADC');
    const c = classified.find((x) => x.series === s)!;
    if (c.kind !== 'adc' || !c.output)
      throw unprocessable(`The series chosen for ADC, ${nameOf(s)}, is not an ADC map (${c.why})`, { field: 'series' });
    adc = { series: s, output: c.output, how: 'scanner', reason: `${nameOf(s)} used as it is: ${c.why}` };
  } else {
    const onGrid = of('adc').filter((c) => onDwiGrid(c.output));
    const theirs = onGrid.filter((c) => !isOwnDerivedAdc(c.series, c.output));
    // strokeview's own derived ADC only when no other can be had (chosen with `series`, or nothing to compute from).
    const scanner = latest(theirs) ?? (computedFrom() ? undefined : latest(onGrid));
    adc = scanner
      ? {
          series: scanner.series,
          output: scanner.output,
          how: 'scanner',
          reason: `${nameOf(scanner.series)} used as it is: ${scanner.why}, on the DWI grid`,
        }
      : computedFrom();
    if (!adc) {
      throw unprocessable(
        `No ADC for the DWI (${nameOf(dwi.series)}): the study has no ADC series on its grid and no diffusion series to compute one from. Found ${found()}`,
        { field: 'files' },
      );
    }
  }

  // FLAIR
  let flair: RoleDecision['flair'] = null;
  if (choice.flair && choice.flair !== 'none') {
    const s = pick(all, choice.flair, 'FLAIR');
    const c = classified.find((x) => x.series === s)!;
    if (!c.output || c.kind === 'diffusion' || c.kind === 'trace' || c.kind === 'adc') {
      throw unprocessable(`The series chosen for FLAIR, ${nameOf(s)}, is ${c.output ? `a ${c.kind} series` : 'not converted'}`, {
        field: 'series',
      });
    }
    flair = { series: s, output: c.output, reason: `${nameOf(s)}, as chosen${c.kind === 'flair' ? ` (${c.why})` : ''}` };
  } else if (!choice.flair) {
    const f = latest(of('flair'));
    if (f) flair = { series: f.series, output: f.output, reason: `${nameOf(f.series)}: ${f.why}` };
  }

  const notes: RoleDecision['notes'] = new Map();
  for (const c of classified) {
    const role: DicomRole | null =
      c.series === dwi.series ? 'dwi' : c.series === adc.series ? 'adc' : c.series === flair?.series ? 'flair' : null;
    let reason: string;
    if (c.series === dwi.series && c.series === adc.series) reason = `${c.why} → DWI and ADC computed from it`;
    else if (role === 'dwi') reason = `${c.why} → ${dwi.reason}`;
    else if (role === 'adc') reason = `${c.why} → ${adc.reason}`;
    else if (role === 'flair') reason = flair!.reason;
    else if (c.series.problem) reason = `not used: ${c.series.problem}`;
    else
      reason = `no role: ${c.why}${c.kind === 'diffusion' || c.kind === 'trace' || c.kind === 'adc' || c.kind === 'flair' ? ' (another series was chosen; pick it with `series`)' : ''}`;
    notes.set(c.series.seriesUid, { kind: c.kind, role, reason, bValues: distinctB(c.output?.bValues ?? null) });
  }
  // A DWI and ADC from one series is one row with role 'dwi'; the ADC's source is in `roles`.
  return { dwi, adc, flair, notes };
}

export function roleSource(d: { series: ConvertedSeries; how: 'computed' | 'scanner'; reason: string }): RoleSource {
  return { seriesInstanceUid: d.series.seriesUid, seriesNumber: d.series.seriesNumber, how: d.how, reason: d.reason };
}
