import type { Affine } from '../../shared/nifti.js';
import { type DicomDataset, dcmjs } from './dcmjs.js';

/**
 * Reads a binary DICOM SEG back (dcmjs): its references, its segment and its frames placed in
 * space by its own geometry — what the tests compare with the mask, and what checks a SEG a PACS
 * returns.
 */

export interface SegFrame {
  ipp: number[];
  sourceSopInstanceUid: string | null;
  /** rows × columns, 0/1, row-major. */
  pixels: Uint8Array;
}

const first = <T>(v: unknown): T => (Array.isArray(v) ? v[0] : v) as T;

export function readSeg(bytes: Uint8Array) {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const dict = dcmjs.data.DicomMessage.readFile(buffer);
  const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict);
  const rows = ds.Rows as number;
  const columns = ds.Columns as number;
  const shared = first<DicomDataset>(ds.SharedFunctionalGroupsSequence);
  const iop = first<DicomDataset>(shared.PlaneOrientationSequence).ImageOrientationPatient as number[];
  const spacing = first<DicomDataset>(shared.PixelMeasuresSequence).PixelSpacing as number[];
  const unpacked = dcmjs.data.BitArray.unpack(first<ArrayBuffer>(ds.PixelData));
  const perFrame = ds.PerFrameFunctionalGroupsSequence as DicomDataset[];
  const n = rows * columns;
  const frames: SegFrame[] = (Array.isArray(perFrame) ? perFrame : [perFrame]).map((g, f) => {
    const derivation = g.DerivationImageSequence ? first<DicomDataset>(g.DerivationImageSequence) : null;
    const src = derivation?.SourceImageSequence ? first<DicomDataset>(derivation.SourceImageSequence) : null;
    const pixels = new Uint8Array(n);
    for (let p = 0; p < n; p++) pixels[p] = unpacked[f * n + p] ? 1 : 0;
    return {
      ipp: first<DicomDataset>(g.PlanePositionSequence).ImagePositionPatient as number[],
      sourceSopInstanceUid: (src?.ReferencedSOPInstanceUID as string | undefined) ?? null,
      pixels,
    };
  });
  const referencedSeries = ds.ReferencedSeriesSequence ? first<DicomDataset>(ds.ReferencedSeriesSequence) : null;
  return {
    dataset: ds,
    sopClassUid: ds.SOPClassUID as string,
    sopInstanceUid: ds.SOPInstanceUID as string,
    seriesInstanceUid: ds.SeriesInstanceUID as string,
    studyInstanceUid: ds.StudyInstanceUID as string,
    frameOfReferenceUid: (ds.FrameOfReferenceUID as string | undefined) ?? null,
    referencedSeriesUid: (referencedSeries?.SeriesInstanceUID as string | undefined) ?? null,
    segment: first<DicomDataset>(ds.SegmentSequence),
    frames,
    /** The frames as a volume on a NIfTI grid (RAS affine): each pixel to the voxel at its centre; `unplaced` counts set pixels outside the grid. */
    toVoxels(dims: [number, number, number], affine: Affine) {
      const [nx, ny, nz] = dims;
      const data = new Uint8Array(nx * ny * nz);
      let unplaced = 0;
      // Solve affine · v = ras by Cramer's rule on the 3×3 part.
      const m = [0, 1, 2].map((r) => [affine[r]![0]!, affine[r]![1]!, affine[r]![2]!]);
      const det3 = (a: number[][]) =>
        a[0]![0]! * (a[1]![1]! * a[2]![2]! - a[1]![2]! * a[2]![1]!) -
        a[0]![1]! * (a[1]![0]! * a[2]![2]! - a[1]![2]! * a[2]![0]!) +
        a[0]![2]! * (a[1]![0]! * a[2]![1]! - a[1]![1]! * a[2]![0]!);
      const d = det3(m);
      for (const f of frames) {
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < columns; c++) {
            if (!f.pixels[r * columns + c]) continue;
            const lps = [0, 1, 2].map((k) => f.ipp[k]! + c * spacing[1]! * iop[k]! + r * spacing[0]! * iop[3 + k]!);
            const b = [-lps[0]! - affine[0]![3]!, -lps[1]! - affine[1]![3]!, lps[2]! - affine[2]![3]!];
            const v = [0, 1, 2].map((col) => Math.round(det3(m.map((row, ri) => row.map((x, ci) => (ci === col ? b[ri]! : x)))) / d));
            const [i, j, k] = v as [number, number, number];
            if (i < 0 || j < 0 || k < 0 || i >= nx || j >= ny || k >= nz) unplaced++;
            else data[i + nx * (j + ny * k)] = 1;
          }
        }
      }
      return { data, unplaced };
    },
  };
}
