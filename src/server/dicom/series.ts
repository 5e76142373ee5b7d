import type { ScannedImage } from './scan.js';

/**
 * Series as the scanned headers describe them: their images grouped by slice position (the
 * distance along the slice normal), and whether anything is missing — every position of a
 * series must hold the same number of images (one per volume), at even spacing. This is checked
 * here, independently of the converter, so a missing slice is named whatever dcm2niix makes of it.
 */

/** An image (or a frame of a multi-frame object) a DICOM SEG can reference. */
export interface SliceRef {
  sopInstanceUid: string;
  /** 1-based, for multi-frame objects. */
  frameNumber?: number;
}

export interface SlicePosition {
  /** Distance along the slice normal, mm (LPS). */
  distance: number;
  imagePositionPatient: number[] | null;
  /** The images at this position: b ≈ 0 first, then by b-value and instance number. */
  refs: (SliceRef & { bValue: number | null; instanceNumber: number | null })[];
}

export interface SeriesFacts {
  seriesUid: string;
  seriesNumber: number | null;
  description: string;
  protocolName: string;
  imageType: string[];
  sopClassUid: string;
  frameOfReferenceUid: string | null;
  /** Images (frames) in the series. */
  images: number;
  rows: number;
  columns: number;
  pixelSpacing: number[] | null;
  sliceThickness: number | null;
  iop: number[] | null;
  /** Sorted by distance. */
  positions: SlicePosition[];
  /** What is wrong with it (missing images, mixed orientations), or null. */
  problem: string | null;
}

export const cross = (a: number[], b: number[]): number[] => [
  a[1]! * b[2]! - a[2]! * b[1]!,
  a[2]! * b[0]! - a[0]! * b[2]!,
  a[0]! * b[1]! - a[1]! * b[0]!,
];
export const dot = (a: number[], b: number[]) => a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;

/** The slice normal of an orientation (row × column), or null. */
export function sliceNormal(iop: number[] | null): number[] | null {
  if (!iop || iop.length < 6) return null;
  const n = cross(iop.slice(0, 3), iop.slice(3, 6));
  const len = Math.hypot(n[0]!, n[1]!, n[2]!);
  return len > 0 ? n.map((x) => x / len) : null;
}

const label = (s: Pick<SeriesFacts, 'seriesNumber' | 'description'>) =>
  `series ${s.seriesNumber ?? '?'}${s.description ? ` (${s.description})` : ''}`;

function completeness(s: Omit<SeriesFacts, 'problem'>, orientations: number): string | null {
  if (orientations > 1) return `${label(s)} mixes ${orientations} slice orientations (a localizer?)`;
  if (s.positions.length < 2) return null;
  const counts = s.positions.map((p) => p.refs.length);
  const most = [...counts].sort((a, b) => a - b)[Math.floor(counts.length / 2)]!;
  const odd = s.positions.filter((p) => p.refs.length !== most);
  if (odd.length > 0) {
    const where = odd
      .slice(0, 3)
      .map((p) => `${p.refs.length} at ${p.distance.toFixed(1)} mm`)
      .join(', ');
    return `${label(s)} is missing images: ${s.positions.length - odd.length} of its ${s.positions.length} slice positions hold ${most} images each, but ${odd.length} ${odd.length === 1 ? 'holds' : 'hold'} a different number (${where}${odd.length > 3 ? ', …' : ''})`;
  }
  const gaps = s.positions.slice(1).map((p, i) => p.distance - s.positions[i]!.distance);
  const typical = [...gaps].sort((a, b) => a - b)[Math.floor(gaps.length / 2)]!;
  const wide = gaps.findIndex((g) => g > 1.5 * typical);
  if (wide >= 0) {
    return `${label(s)} is missing a slice: its slices are ${typical.toFixed(2)} mm apart, but ${gaps[wide]!.toFixed(2)} mm between ${s.positions[wide]!.distance.toFixed(1)} and ${s.positions[wide + 1]!.distance.toFixed(1)} mm`;
  }
  return null;
}

/** Groups a study's scanned images into series, with their slice positions and completeness. */
export function groupSeries(images: ScannedImage[]): SeriesFacts[] {
  const bySeries = new Map<string, ScannedImage[]>();
  for (const img of images) {
    const list = bySeries.get(img.seriesUid) ?? [];
    list.push(img);
    bySeries.set(img.seriesUid, list);
  }
  const out: SeriesFacts[] = [];
  for (const [seriesUid, list] of bySeries) {
    const head = list[0]!;
    const orientations = new Set(list.map((i) => (i.iop ?? []).map((x) => x.toFixed(3)).join(',')));
    const normal = sliceNormal(head.iop);
    const positions = new Map<string, SlicePosition>();
    let images = 0;
    for (const img of list) {
      for (const f of img.frames) {
        images++;
        const distance = normal && f.ipp ? dot(f.ipp, normal) : 0;
        const key = distance.toFixed(2);
        const pos = positions.get(key) ?? { distance, imagePositionPatient: f.ipp, refs: [] };
        pos.refs.push({
          sopInstanceUid: img.sopUid,
          ...(f.frameNumber !== undefined ? { frameNumber: f.frameNumber } : {}),
          bValue: f.bValue,
          instanceNumber: img.instanceNumber,
        });
        positions.set(key, pos);
      }
    }
    const sorted = [...positions.values()].sort((a, b) => a.distance - b.distance);
    for (const p of sorted) {
      p.refs.sort((a, b) => (a.bValue ?? 0) - (b.bValue ?? 0) || (a.instanceNumber ?? 0) - (b.instanceNumber ?? 0));
    }
    const facts: Omit<SeriesFacts, 'problem'> = {
      seriesUid,
      seriesNumber: head.seriesNumber,
      description: head.seriesDescription,
      protocolName: head.protocolName,
      imageType: head.imageType,
      sopClassUid: head.sopClassUid,
      frameOfReferenceUid: head.frameOfReferenceUid,
      images,
      rows: head.rows,
      columns: head.columns,
      pixelSpacing: head.pixelSpacing,
      sliceThickness: head.sliceThickness,
      iop: head.iop,
      positions: sorted,
    };
    out.push({ ...facts, problem: completeness(facts, orientations.size) });
  }
  return out.sort((a, b) => (a.seriesNumber ?? 0) - (b.seriesNumber ?? 0) || a.seriesUid.localeCompare(b.seriesUid));
}

export const seriesLabel = label;
