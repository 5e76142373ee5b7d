import { randomUUID } from 'node:crypto';
import type { DicomPatient } from '../../shared/dicom-origin.js';
import type { Affine } from '../../shared/nifti.js';
import type { StoredDicomSeriesRow } from '../db/dicom.js';
import { unprocessable } from '../errors.js';
import { readNifti } from '../nifti/read.js';
import { cpuTask } from '../workers/task.js';
import { type DicomDataset, dcmjs } from './dcmjs.js';

/**
 * A lesion mask as a DICOM Segmentation object (Segmentation IOD, PS3.3 A.51): one binary
 * segment, one frame per slice of the source series, each frame on that slice's own plane
 * (its ImagePositionPatient, the series' orientation and pixel spacing) and derived from the
 * slice's source image. The mask lives on the DWI grid of the stored NIfTI; each SEG pixel takes
 * the mask voxel at its centre (the NIfTI affine inverted), so the SEG's geometry is the source
 * slices' whatever way the converter flipped or reordered them. Written by dcmjs (its
 * naturalized dataset → Part 10 writer), in the CPU pool.
 *
 * Coded concepts (DICOM PS3.16): the segment's category is CID 7150 "Segmentation Property
 * Categories" (SCT 49755003 "Morphologically Altered Structure"), its type CID 7151
 * "Segmentation Property Types" (SCT 55641003 "Infarct"), anatomic region SCT 12738006 "Brain".
 */

export const SEG_SOP_CLASS_UID = '1.2.840.10008.5.1.4.1.1.66.4';
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

export const INFARCT_CATEGORY = { CodeValue: '49755003', CodingSchemeDesignator: 'SCT', CodeMeaning: 'Morphologically Altered Structure' };
export const INFARCT_TYPE = { CodeValue: '55641003', CodingSchemeDesignator: 'SCT', CodeMeaning: 'Infarct' };
const BRAIN = { CodeValue: '12738006', CodingSchemeDesignator: 'SCT', CodeMeaning: 'Brain' };
const SEGMENTATION_DERIVATION = { CodeValue: '113076', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Segmentation' };
const SOURCE_IMAGE_PURPOSE = {
  CodeValue: '121322',
  CodingSchemeDesignator: 'DCM',
  CodeMeaning: 'Source image for image processing operation',
};

/** How the segment was made: a model's result is AUTOMATIC; a person's correction of one SEMIAUTOMATIC; drawn from nothing MANUAL. */
export type SegAlgorithmType = 'AUTOMATIC' | 'SEMIAUTOMATIC' | 'MANUAL';

export interface SegInput {
  /** The mask (.nii or .nii.gz bytes) on the case's DWI grid. */
  mask: Uint8Array;
  studyInstanceUid: string;
  frameOfReferenceUid: string | null;
  /** The source series (the DWI's), as the import kept it. */
  source: StoredDicomSeriesRow;
  /** Kept only with DICOM_KEEP_PATIENT=true at import; otherwise the SEG's patient and study attributes are empty. */
  patient: DicomPatient | null;
  algorithm: { type: SegAlgorithmType; name: string | null; version: string | null };
  /** A person's name for the correction (ContentCreatorName), or null. */
  creator: string | null;
  seriesDescription: string;
  softwareVersion: string;
  /** Injected clock (ContentDate/Time, SeriesDate/Time). */
  now: number;
}

export interface SegResult {
  bytes: Uint8Array;
  sopInstanceUid: string;
  seriesInstanceUid: string;
  frames: number;
  /** Pixels set across all frames. */
  pixels: number;
}

/** A UID under the 2.25 root (a UUID as an integer, PS3.5 B.2). */
export function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;
}

export function invertAffine(a: Affine): number[][] {
  const [m00, m01, m02] = a[0]!;
  const [m10, m11, m12] = a[1]!;
  const [m20, m21, m22] = a[2]!;
  const det = m00! * (m11! * m22! - m12! * m21!) - m01! * (m10! * m22! - m12! * m20!) + m02! * (m10! * m21! - m11! * m20!);
  if (!Number.isFinite(det) || Math.abs(det) < 1e-12) throw unprocessable('The mask has a degenerate affine');
  const inv = [
    [(m11! * m22! - m12! * m21!) / det, (m02! * m21! - m01! * m22!) / det, (m01! * m12! - m02! * m11!) / det],
    [(m12! * m20! - m10! * m22!) / det, (m00! * m22! - m02! * m20!) / det, (m02! * m10! - m00! * m12!) / det],
    [(m10! * m21! - m11! * m20!) / det, (m01! * m20! - m00! * m21!) / det, (m00! * m11! - m01! * m10!) / det],
  ];
  const t = [a[0]![3]!, a[1]![3]!, a[2]![3]!];
  return inv.map((row) => [...row, -(row[0]! * t[0]! + row[1]! * t[1]! + row[2]! * t[2]!)]);
}

/** DICOM DA, TM and DS values. */
export const da = (n: number) => new Date(n).toISOString().slice(0, 10).replace(/-/g, '');
export const tm = (n: number) => new Date(n).toISOString().slice(11, 19).replace(/:/g, '');
export const ds = (x: number) => Number(x.toFixed(6));

/**
 * A volume on one source plane: rows × columns, row-major (DICOM's pixel order), each pixel the
 * voxel at its centre (0 outside the volume). Pixel (r, c) sits at IPP + c·Δc·rowCosines +
 * r·Δr·columnCosines (LPS, mm), i.e. RAS (−x, −y, z). The SEG's frames and the derived ADC's images both come from it.
 */
export function planeOfVolume(
  volume: { dims: [number, number, number]; data: ArrayLike<number> },
  inv: number[][],
  plane: { ipp: number[]; iop: number[]; spacing: number[]; rows: number; columns: number },
): Float64Array {
  const { ipp, iop, spacing, rows, columns } = plane;
  const [nx, ny, nz] = volume.dims;
  const out = new Float64Array(rows * columns);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < columns; c++) {
      // LPS (mm) of the pixel centre, to RAS, to voxel indices.
      const lps = [0, 1, 2].map((d) => ipp[d]! + c * spacing[1]! * iop[d]! + r * spacing[0]! * iop[3 + d]!);
      const ras = [-lps[0]!, -lps[1]!, lps[2]!];
      const v = inv.map((row) => row[0]! * ras[0]! + row[1]! * ras[1]! + row[2]! * ras[2]! + row[3]!);
      const i = Math.round(v[0]!);
      const j = Math.round(v[1]!);
      const k = Math.round(v[2]!);
      if (i < 0 || j < 0 || k < 0 || i >= nx || j >= ny || k >= nz) continue;
      out[r * columns + c] = volume.data[i + nx * (j + ny * k)]!;
    }
  }
  return out;
}

/** The mask on one source slice, 0/1. */
export function sliceOfMask(
  mask: { dims: [number, number, number]; data: ArrayLike<number> },
  inv: number[][],
  plane: { ipp: number[]; iop: number[]; spacing: number[]; rows: number; columns: number },
): Uint8Array {
  return Uint8Array.from(planeOfVolume(mask, inv, plane), (v) => (v > 0 ? 1 : 0));
}

/** The patient and study modules of the SEG: the case's when it kept them, else empty (type 2) and marked de-identified. */
export function patientAndStudy(patient: DicomPatient | null): DicomDataset {
  if (!patient) {
    return {
      PatientName: '',
      PatientID: '',
      PatientBirthDate: '',
      PatientSex: '',
      StudyDate: '',
      StudyTime: '',
      ReferringPhysicianName: '',
      StudyID: '',
      AccessionNumber: '',
      PatientIdentityRemoved: 'YES',
      DeidentificationMethod: 'strokeview: DICOM_KEEP_PATIENT=false',
    };
  }
  const opt = (k: string, v: string | null) => (v ? { [k]: v } : {});
  return {
    PatientName: patient.patientName ?? '',
    PatientID: patient.patientId ?? '',
    PatientBirthDate: patient.patientBirthDate ?? '',
    PatientSex: patient.patientSex ?? '',
    ...opt('PatientAge', patient.patientAge),
    StudyDate: patient.studyDate ?? '',
    StudyTime: patient.studyTime ?? '',
    ReferringPhysicianName: patient.referringPhysicianName ?? '',
    StudyID: patient.studyId ?? '',
    AccessionNumber: patient.accessionNumber ?? '',
    ...opt('StudyDescription', patient.studyDescription),
  };
}

/**
 * The source series' planes an object derived from it is placed on: its orientation, pixel
 * spacing and size, and the slices with a position and a source image to reference (422 with the
 * caller's words when there are none).
 */
export function sourcePlanes(source: StoredDicomSeriesRow, say: { noGeometry: string; noSlice: string }) {
  const iop = source.geometry.imageOrientationPatient as number[] | null;
  const spacing = source.geometry.pixelSpacing as number[] | null;
  const rows = source.geometry.rows as number;
  const columns = source.geometry.columns as number;
  if (!iop || iop.length !== 6 || !spacing || spacing.length !== 2 || !rows || !columns) throw unprocessable(say.noGeometry);
  const planes = source.slices.filter((s) => s.imagePositionPatient && s.refs.length > 0);
  if (planes.length === 0) throw unprocessable(say.noSlice);
  return { iop, spacing, rows, columns, planes };
}

export function buildSeg(input: SegInput): SegResult {
  const mask = readNifti(input.mask);
  const { source } = input;
  const { iop, spacing, rows, columns, planes } = sourcePlanes(source, {
    noGeometry: 'The source series has no plane geometry (orientation, pixel spacing) to place a DICOM SEG on',
    noSlice: 'No slice of the source series could be matched to the mask; a DICOM SEG cannot reference it',
  });
  const inv = invertAffine(mask.affine);

  const frameBits = rows * columns;
  const pixels = new Uint8Array(frameBits * planes.length);
  let set = 0;
  const perFrame = planes.map((p, f) => {
    const frame = sliceOfMask({ dims: mask.dims, data: mask.data }, inv, { ipp: p.imagePositionPatient!, iop, spacing, rows, columns });
    pixels.set(frame, f * frameBits);
    for (const v of frame) set += v;
    const ref = p.refs[0]!;
    return {
      FrameContentSequence: [{ DimensionIndexValues: [1, f + 1] }],
      PlanePositionSequence: [{ ImagePositionPatient: p.imagePositionPatient!.map(ds) }],
      SegmentIdentificationSequence: [{ ReferencedSegmentNumber: 1 }],
      DerivationImageSequence: [
        {
          DerivationCodeSequence: [SEGMENTATION_DERIVATION],
          SourceImageSequence: [
            {
              ReferencedSOPClassUID: source.sopClassUid,
              ReferencedSOPInstanceUID: ref.sopInstanceUid,
              ...(ref.frameNumber ? { ReferencedFrameNumber: ref.frameNumber } : {}),
              PurposeOfReferenceCodeSequence: [SOURCE_IMAGE_PURPOSE],
            },
          ],
        },
      ],
    };
  });
  // One reference per source instance, in frame order.
  const referenced = new Map<string, true>();
  for (const p of planes) referenced.set(p.refs[0]!.sopInstanceUid, true);

  const sopInstanceUid = newUid();
  const seriesInstanceUid = newUid();
  const dimensionOrganizationUid = newUid();
  const { type, name, version } = input.algorithm;
  const segment = {
    SegmentNumber: 1,
    SegmentLabel: 'Infarct',
    SegmentDescription: type === 'AUTOMATIC' ? 'Ischemic lesion (model prediction)' : 'Ischemic lesion (corrected)',
    SegmentAlgorithmType: type,
    ...(type !== 'MANUAL' && name ? { SegmentAlgorithmName: name } : {}),
    ...(type !== 'MANUAL' && name
      ? {
          SegmentationAlgorithmIdentificationSequence: [
            {
              AlgorithmFamilyCodeSequence: [{ CodeValue: '123109', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Manual Processing' }],
              AlgorithmName: name,
              AlgorithmVersion: version ?? 'unknown',
            },
          ],
        }
      : {}),
    SegmentedPropertyCategoryCodeSequence: [INFARCT_CATEGORY],
    SegmentedPropertyTypeCodeSequence: [INFARCT_TYPE],
    AnatomicRegionSequence: [BRAIN],
    RecommendedDisplayCIELabValue: [43803, 26565, 37722],
  };
  if (segment.SegmentationAlgorithmIdentificationSequence && type === 'AUTOMATIC') {
    // A model: DCM 123110 "Artificial Intelligence" (CID 7162 Surface Processing Algorithm Families is for surfaces; CID 7164 lists these).
    segment.SegmentationAlgorithmIdentificationSequence[0]!.AlgorithmFamilyCodeSequence = [
      { CodeValue: '123110', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Artificial Intelligence' },
    ];
  }
  const now = input.now;
  const thickness = source.geometry.sliceThickness as number | null;
  const gap =
    planes.length > 1
      ? Math.hypot(...[0, 1, 2].map((d) => planes[1]!.imagePositionPatient![d]! - planes[0]!.imagePositionPatient![d]!))
      : null;

  const dataset: DicomDataset = {
    _meta: {},
    _vrMap: { PixelData: 'OB' },
    SpecificCharacterSet: 'ISO_IR 192',
    SOPClassUID: SEG_SOP_CLASS_UID,
    SOPInstanceUID: sopInstanceUid,
    ...patientAndStudy(input.patient),
    StudyInstanceUID: input.studyInstanceUid,
    Modality: 'SEG',
    SeriesInstanceUID: seriesInstanceUid,
    SeriesNumber: 300,
    SeriesDescription: input.seriesDescription.slice(0, 64),
    SeriesDate: da(now),
    SeriesTime: tm(now),
    ...(input.frameOfReferenceUid ? { FrameOfReferenceUID: input.frameOfReferenceUid, PositionReferenceIndicator: '' } : {}),
    Manufacturer: 'strokeview',
    ManufacturerModelName: 'strokeview',
    DeviceSerialNumber: '0',
    SoftwareVersions: input.softwareVersion,
    InstanceNumber: 1,
    ContentDate: da(now),
    ContentTime: tm(now),
    ImageType: ['DERIVED', 'PRIMARY'],
    ContentLabel: 'LESION',
    ContentDescription: 'Ischemic stroke lesion',
    ContentCreatorName: input.creator ?? '',
    SegmentationType: 'BINARY',
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: rows,
    Columns: columns,
    BitsAllocated: 1,
    BitsStored: 1,
    HighBit: 0,
    PixelRepresentation: 0,
    LossyImageCompression: '00',
    NumberOfFrames: planes.length,
    SegmentSequence: [segment],
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: dimensionOrganizationUid }],
    DimensionIndexSequence: [
      {
        DimensionOrganizationUID: dimensionOrganizationUid,
        DimensionIndexPointer: 0x0062000b, // ReferencedSegmentNumber
        FunctionalGroupPointer: 0x0062000a, // SegmentIdentificationSequence
        DimensionDescriptionLabel: 'ReferencedSegmentNumber',
      },
      {
        DimensionOrganizationUID: dimensionOrganizationUid,
        DimensionIndexPointer: 0x00200032, // ImagePositionPatient
        FunctionalGroupPointer: 0x00209113, // PlanePositionSequence
        DimensionDescriptionLabel: 'ImagePositionPatient',
      },
    ],
    SharedFunctionalGroupsSequence: [
      {
        PlaneOrientationSequence: [{ ImageOrientationPatient: iop.map(ds) }],
        PixelMeasuresSequence: [
          {
            PixelSpacing: spacing.map(ds),
            SliceThickness: ds(thickness ?? gap ?? 1),
            ...(gap ? { SpacingBetweenSlices: ds(gap) } : {}),
          },
        ],
      },
    ],
    PerFrameFunctionalGroupsSequence: perFrame,
    ReferencedSeriesSequence: [
      {
        SeriesInstanceUID: source.seriesInstanceUid,
        ReferencedInstanceSequence: [...referenced.keys()].map((uid) => ({
          ReferencedSOPClassUID: source.sopClassUid,
          ReferencedSOPInstanceUID: uid,
        })),
      },
    ],
    PixelData: dcmjs.data.BitArray.pack(pixels).buffer,
  };
  dataset._meta = { TransferSyntaxUID: { Value: [EXPLICIT_VR_LITTLE_ENDIAN] } };
  const bytes = new Uint8Array(dcmjs.data.datasetToBuffer(dataset));
  return { bytes, sopInstanceUid, seriesInstanceUid, frames: planes.length, pixels: set };
}

export const buildSegTask = cpuTask<SegInput, SegResult>(import.meta.url, 'buildSeg');
