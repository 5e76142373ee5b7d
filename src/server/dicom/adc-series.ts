import type { DicomPatient } from '../../shared/dicom-origin.js';
import type { StoredDicomSeriesRow } from '../db/dicom.js';
import { readNifti } from '../nifti/read.js';
import { cpuTask } from '../workers/task.js';
import { type DicomDataset, dcmjs } from './dcmjs.js';
import { da, ds, invertAffine, newUid, patientAndStudy, planeOfVolume, sourcePlanes, tm } from './seg.js';

/**
 * The ADC the import computed (not the scanner's own) as a derived MR series, so a PACS shows it
 * beside the SEG: one MR Image (PS3.3 A.4) per slice of the source diffusion series, on that
 * slice's plane (its ImagePositionPatient, the series' orientation and pixel spacing, kept in
 * case_dicom), in the source study and frame of reference, in a new series. ImageType
 * DERIVED\SECONDARY\ADC; each image derives from the source images of its slice
 * (SourceImageSequence) and the series references the source diffusion series. Pixel values are
 * the ADC in 10⁻⁶ mm²/s as unsigned 16-bit integers (rounded, clamped to 0…65535; the computed
 * ADC is ≥ 0), with RescaleSlope 1 and RescaleIntercept 0, so stored values are the unit's
 * integers; the unit is named in DerivationDescription and ImageComments. Each pixel takes the
 * stored ADC voxel at its centre (the NIfTI affine inverted), as the SEG does. Written by dcmjs, in
 * the CPU pool.
 */

export const MR_IMAGE_SOP_CLASS_UID = '1.2.840.10008.5.1.4.1.1.4';
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
const ADC_UNIT_NOTE = 'ADC in 1e-6 mm2/s (stored value = ADC, RescaleSlope 1, RescaleIntercept 0)';
const DERIVATION = { CodeValue: '113072', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Multiplanar reformatting' };
const SOURCE_IMAGE_PURPOSE = {
  CodeValue: '121322',
  CodingSchemeDesignator: 'DCM',
  CodeMeaning: 'Source image for image processing operation',
};

export interface AdcSeriesInput {
  /** The case's stored ADC (.nii or .nii.gz bytes), in 10⁻⁶ mm²/s. */
  adc: Uint8Array;
  studyInstanceUid: string;
  frameOfReferenceUid: string | null;
  /** The ADC's source (the diffusion series it was computed from), as the import kept it. */
  source: StoredDicomSeriesRow;
  /** Kept only with DICOM_KEEP_PATIENT=true and shown to the caller; otherwise empty, marked de-identified. */
  patient: DicomPatient | null;
  softwareVersion: string;
  /** Injected clock (SeriesDate/Time, ContentDate/Time). */
  now: number;
}

export interface AdcSeriesResult {
  /** Part 10 files, one per slice, in the source series' slice order. */
  files: Uint8Array[];
  seriesInstanceUid: string;
  sopInstanceUids: string[];
}

/** An ADC value (10⁻⁶ mm²/s) as the stored 16-bit integer. */
export const adcStoredValue = (x: number) => (Number.isFinite(x) ? Math.min(65535, Math.max(0, Math.round(x))) : 0);

export function buildAdcSeries(input: AdcSeriesInput): AdcSeriesResult {
  const adc = readNifti(input.adc);
  const { source } = input;
  const { iop, spacing, rows, columns, planes } = sourcePlanes(source, {
    noGeometry: 'The ADC source series has no plane geometry (orientation, pixel spacing) to place a derived series on',
    noSlice: 'No slice of the ADC source series could be matched; the derived ADC cannot reference it',
  });
  const inv = invertAffine(adc.affine);
  const thickness = source.geometry.sliceThickness as number | null;
  const gap =
    planes.length > 1
      ? Math.hypot(...[0, 1, 2].map((d) => planes[1]!.imagePositionPatient![d]! - planes[0]!.imagePositionPatient![d]!))
      : null;
  // The slice normal (LPS), for SliceLocation: the position along it.
  const normal = [iop[1]! * iop[5]! - iop[2]! * iop[4]!, iop[2]! * iop[3]! - iop[0]! * iop[5]!, iop[0]! * iop[4]! - iop[1]! * iop[3]!];

  const seriesInstanceUid = newUid();
  const now = input.now;
  const study = patientAndStudy(input.patient);
  const referenced = [...new Set(planes.flatMap((p) => p.refs.map((r) => r.sopInstanceUid)))];
  const files: Uint8Array[] = [];
  const sopInstanceUids: string[] = [];
  planes.forEach((p, n) => {
    const ipp = p.imagePositionPatient!;
    const values = planeOfVolume({ dims: adc.dims, data: adc.data }, inv, { ipp, iop, spacing, rows, columns });
    const pixels = new Uint16Array(rows * columns);
    for (let i = 0; i < values.length; i++) pixels[i] = adcStoredValue(values[i]!);
    const sopInstanceUid = newUid();
    sopInstanceUids.push(sopInstanceUid);
    const dataset: DicomDataset = {
      _meta: {},
      _vrMap: { PixelData: 'OW' },
      SpecificCharacterSet: 'ISO_IR 192',
      SOPClassUID: MR_IMAGE_SOP_CLASS_UID,
      SOPInstanceUID: sopInstanceUid,
      ...study,
      StudyInstanceUID: input.studyInstanceUid,
      Modality: 'MR',
      SeriesInstanceUID: seriesInstanceUid,
      SeriesNumber: 301,
      SeriesDescription: 'strokeview ADC (computed, 1e-6 mm2/s)',
      SeriesDate: da(now),
      SeriesTime: tm(now),
      // Type 2C, empty: the source's patient position is not kept. The head is an unpaired body part (no Laterality).
      BodyPartExamined: 'HEAD',
      PatientPosition: '',
      ...(input.frameOfReferenceUid ? { FrameOfReferenceUID: input.frameOfReferenceUid, PositionReferenceIndicator: '' } : {}),
      Manufacturer: 'strokeview',
      ManufacturerModelName: 'strokeview',
      SoftwareVersions: input.softwareVersion,
      InstanceNumber: n + 1,
      ContentDate: da(now),
      ContentTime: tm(now),
      ImageType: ['DERIVED', 'SECONDARY', 'ADC'],
      DerivationDescription:
        `ADC = ln(S_b0 / S_b) / b computed by strokeview from series ${source.seriesInstanceUid}; ${ADC_UNIT_NOTE}`.slice(0, 1024),
      DerivationCodeSequence: [DERIVATION],
      SourceImageSequence: p.refs.map((ref) => ({
        ReferencedSOPClassUID: source.sopClassUid,
        ReferencedSOPInstanceUID: ref.sopInstanceUid,
        ...(ref.frameNumber ? { ReferencedFrameNumber: ref.frameNumber } : {}),
        PurposeOfReferenceCodeSequence: [SOURCE_IMAGE_PURPOSE],
      })),
      ReferencedSeriesSequence: [
        {
          SeriesInstanceUID: source.seriesInstanceUid,
          ReferencedInstanceSequence: referenced.map((uid) => ({
            ReferencedSOPClassUID: source.sopClassUid,
            ReferencedSOPInstanceUID: uid,
          })),
        },
      ],
      ImageComments: ADC_UNIT_NOTE,
      BurnedInAnnotation: 'NO',
      LossyImageCompression: '00',
      // Image plane
      PixelSpacing: spacing.map(ds),
      ImageOrientationPatient: iop.map(ds),
      ImagePositionPatient: ipp.map(ds),
      SliceThickness: ds(thickness ?? gap ?? 1),
      ...(gap ? { SpacingBetweenSlices: ds(gap) } : {}),
      SliceLocation: ds(ipp[0]! * normal[0]! + ipp[1]! * normal[1]! + ipp[2]! * normal[2]!),
      // MR image: what the map was computed from (a diffusion-weighted echo-planar acquisition).
      ScanningSequence: 'EP',
      SequenceVariant: 'NONE',
      ScanOptions: '',
      MRAcquisitionType: '2D',
      RepetitionTime: '',
      EchoTime: '',
      EchoTrainLength: '',
      // Image pixel
      SamplesPerPixel: 1,
      PhotometricInterpretation: 'MONOCHROME2',
      Rows: rows,
      Columns: columns,
      BitsAllocated: 16,
      BitsStored: 16,
      HighBit: 15,
      PixelRepresentation: 0,
      RescaleIntercept: 0,
      RescaleSlope: 1,
      WindowCenter: 1000,
      WindowWidth: 2000,
      PixelData: pixels.buffer,
    };
    dataset._meta = { TransferSyntaxUID: { Value: [EXPLICIT_VR_LITTLE_ENDIAN] } };
    files.push(new Uint8Array(dcmjs.data.datasetToBuffer(dataset)));
  });
  return { files, seriesInstanceUid, sopInstanceUids };
}

export const buildAdcSeriesTask = cpuTask<AdcSeriesInput, AdcSeriesResult>(import.meta.url, 'buildAdcSeries');

/** One image of a derived ADC series read back with dcmjs (tests, checks): its plane and stored values. */
export function readAdcImage(bytes: Uint8Array) {
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const d = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dcmjs.data.DicomMessage.readFile(ab).dict);
  const pixelData = (d.PixelData as ArrayBuffer[])[0]!;
  return {
    dataset: d,
    sopClassUid: d.SOPClassUID as string,
    studyInstanceUid: d.StudyInstanceUID as string,
    seriesInstanceUid: d.SeriesInstanceUID as string,
    frameOfReferenceUid: (d.FrameOfReferenceUID as string | undefined) ?? null,
    imageType: d.ImageType as string[],
    ipp: (d.ImagePositionPatient as number[]).map(Number),
    iop: (d.ImageOrientationPatient as number[]).map(Number),
    spacing: (d.PixelSpacing as number[]).map(Number),
    rows: d.Rows as number,
    columns: d.Columns as number,
    slope: Number(d.RescaleSlope ?? 1),
    intercept: Number(d.RescaleIntercept ?? 0),
    pixels: new Uint16Array(pixelData.slice(0)),
  };
}

/**
 * Voxel-wise check of a derived ADC series against the stored ADC: each voxel (i, j, k), placed in
 * space by the NIfTI affine, is found in the image whose plane holds it (by the images' own
 * geometry) and compared with its rounded value. Answers how many voxels differ and how many lie on no image.
 */
export function compareAdcSeries(
  images: ReturnType<typeof readAdcImage>[],
  volume: { dims: [number, number, number]; affine: number[][]; data: ArrayLike<number> },
): { compared: number; differ: number; unplaced: number; firstDifference: string | null } {
  const [nx, ny, nz] = volume.dims;
  let compared = 0;
  let differ = 0;
  let unplaced = 0;
  let firstDifference: string | null = null;
  const a = volume.affine;
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const ras = [0, 1, 2].map((r) => a[r]![0]! * i + a[r]![1]! * j + a[r]![2]! * k + a[r]![3]!);
        const lps = [-ras[0]!, -ras[1]!, ras[2]!];
        let hit = false;
        for (const img of images) {
          const rel = [0, 1, 2].map((d) => lps[d]! - img.ipp[d]!);
          const rowDir = img.iop.slice(0, 3);
          const colDir = img.iop.slice(3, 6);
          const n = [
            rowDir[1]! * colDir[2]! - rowDir[2]! * colDir[1]!,
            rowDir[2]! * colDir[0]! - rowDir[0]! * colDir[2]!,
            rowDir[0]! * colDir[1]! - rowDir[1]! * colDir[0]!,
          ];
          if (Math.abs(rel[0]! * n[0]! + rel[1]! * n[1]! + rel[2]! * n[2]!) > 0.01) continue;
          const c = Math.round((rel[0]! * rowDir[0]! + rel[1]! * rowDir[1]! + rel[2]! * rowDir[2]!) / img.spacing[1]!);
          const r = Math.round((rel[0]! * colDir[0]! + rel[1]! * colDir[1]! + rel[2]! * colDir[2]!) / img.spacing[0]!);
          if (r < 0 || c < 0 || r >= img.rows || c >= img.columns) continue;
          hit = true;
          compared++;
          const got = img.pixels[r * img.columns + c]! * img.slope + img.intercept;
          const want = adcStoredValue(volume.data[i + nx * (j + ny * k)]!);
          if (got !== want) {
            differ++;
            firstDifference ??= `voxel ${i},${j},${k}: image ${r},${c} holds ${got}, the ADC ${want}`;
          }
          break;
        }
        if (!hit) unplaced++;
      }
    }
  }
  return { compared, differ, unplaced, firstDifference };
}
