import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredDicomSeriesRow } from '../db/dicom.js';
import { readNifti } from '../nifti/read.js';
import { encodeNifti } from '../nifti/write.js';
import { HAVE_PHILIPS, PHILIPS_SKIP_NOTE, convertPhilipsSeries, dciodvfyErrors, tempDir } from '../test/dicom.js';
import type { ConvertResult } from './convert.js';
import { INFARCT_CATEGORY, INFARCT_TYPE, SEG_SOP_CLASS_UID, buildSeg } from './seg.js';
import { readSeg } from './seg-read.js';

// #26: a lesion mask on the DWI grid of the real Philips series, exported as a DICOM SEG — read
// back with dcmjs to exactly the mask's voxels in the right slices, and valid for dciodvfy.

describe.skipIf(!HAVE_PHILIPS)(`DICOM SEG export${PHILIPS_SKIP_NOTE}`, () => {
  let converted: ConvertResult;
  let dwiSource: StoredDicomSeriesRow;
  let work: string;
  beforeAll(async () => {
    work = tempDir('sv-seg-');
    converted = await convertPhilipsSeries();
    dwiSource = converted.stored.find((s) => s.role === 'dwi')! as StoredDicomSeriesRow;
  }, 120_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** An asymmetric mask on the DWI grid (a box, a diagonal, one corner voxel), so a flip or a slice shift cannot pass. */
  function maskOnDwi() {
    const dwi = readNifti(converted.volumes.dwi!);
    const [nx, ny, nz] = dwi.dims;
    const data = new Uint8Array(nx * ny * nz);
    const at = (i: number, j: number, k: number) => (data[i + nx * (j + ny * k)] = 1);
    for (let k = 10; k < 14; k++) for (let j = 60; j < 70; j++) for (let i = 20; i < 35; i++) at(i, j, k);
    for (let i = 0; i < 50; i++) at(i, 2 * i > ny - 1 ? ny - 1 : 2 * i, 20);
    at(0, 0, 0);
    at(nx - 1, 3, nz - 1);
    const bytes = new Uint8Array(encodeNifti({ dims: dwi.dims, affine: dwi.affine, datatype: 'uint8', data, description: 'mask' }));
    return { dims: dwi.dims, affine: dwi.affine, data, bytes };
  }

  it('references the source series slice by slice, reads back to exactly the mask, and passes dciodvfy', () => {
    const mask = maskOnDwi();
    const seg = buildSeg({
      mask: mask.bytes,
      studyInstanceUid: converted.report.studyInstanceUid,
      frameOfReferenceUid: converted.frameOfReferenceUid,
      source: dwiSource,
      patient: null,
      algorithm: { type: 'AUTOMATIC', name: 'isles-unet-v1', version: '1.0.0' },
      creator: null,
      seriesDescription: 'strokeview lesion (isles-unet-v1)',
      softwareVersion: '0.0.0-test',
      now: Date.UTC(2026, 11, 2, 3, 0, 0),
    });
    expect(seg.frames).toBe(32);
    expect(seg.pixels).toBe(mask.data.reduce((a, b) => a + b, 0));
    const file = path.join(work, 'seg.dcm');
    writeFileSync(file, seg.bytes);
    expect(dciodvfyErrors(file)).toEqual([]);

    const back = readSeg(seg.bytes);
    expect(back.sopClassUid).toBe(SEG_SOP_CLASS_UID);
    expect(back.studyInstanceUid).toBe(converted.report.studyInstanceUid);
    expect(back.frameOfReferenceUid).toBe(converted.frameOfReferenceUid);
    expect(back.referencedSeriesUid).toBe(dwiSource.seriesInstanceUid);
    expect(back.segment).toMatchObject({
      SegmentAlgorithmType: 'AUTOMATIC',
      SegmentAlgorithmName: 'isles-unet-v1',
      SegmentedPropertyCategoryCodeSequence: [INFARCT_CATEGORY],
      SegmentedPropertyTypeCodeSequence: [INFARCT_TYPE],
    });
    // Each frame derives from an image of its own slice in the source series.
    const sourceBySlice = new Map(dwiSource.slices.map((s) => [s.imagePositionPatient!.map((x) => x.toFixed(2)).join(','), s]));
    for (const f of back.frames) {
      const slice = sourceBySlice.get(f.ipp.map((x) => x.toFixed(2)).join(','));
      expect(slice, `frame at ${f.ipp.join(',')}`).toBeDefined();
      expect(slice!.refs.map((r) => r.sopInstanceUid)).toContain(f.sourceSopInstanceUid);
    }
    // Voxel-wise: every SEG pixel, placed in space by the SEG's own geometry, lands on the NIfTI voxel it was made from.
    const voxels = back.toVoxels(mask.dims, mask.affine);
    expect(voxels.unplaced).toBe(0);
    let differ = 0;
    for (let v = 0; v < mask.data.length; v++) if (voxels.data[v] !== mask.data[v]) differ++;
    expect(differ).toBe(0);
  });

  it('a corrected version is SEMIAUTOMATIC with its author; the patient module is empty unless the case kept it', () => {
    const mask = maskOnDwi();
    const common = {
      mask: mask.bytes,
      studyInstanceUid: converted.report.studyInstanceUid,
      frameOfReferenceUid: converted.frameOfReferenceUid,
      source: dwiSource,
      seriesDescription: 'strokeview lesion (corrected v2)',
      softwareVersion: '0.0.0-test',
      now: Date.UTC(2026, 11, 2, 3, 0, 0),
    };
    const corrected = buildSeg({
      ...common,
      patient: null,
      algorithm: { type: 'SEMIAUTOMATIC', name: 'isles-unet-v1', version: '1.0.0' },
      creator: 'reader@example.org',
    });
    const file = path.join(work, 'seg-corrected.dcm');
    writeFileSync(file, corrected.bytes);
    expect(dciodvfyErrors(file)).toEqual([]);
    const back = readSeg(corrected.bytes);
    expect(back.segment.SegmentAlgorithmType).toBe('SEMIAUTOMATIC');
    expect(back.dataset.ContentCreatorName).toEqual([{ Alphabetic: 'reader@example.org' }]);
    expect(back.dataset.PatientIdentityRemoved).toBe('YES');
    expect(back.dataset.PatientID ?? '').toBe('');

    const kept = buildSeg({
      ...common,
      patient: {
        patientName: 'QUIXOTEZZ^ALONSO',
        patientId: 'SV-4471-QQX',
        patientBirthDate: '19230405',
        patientSex: 'M',
        patientAge: null,
        accessionNumber: 'A1',
        referringPhysicianName: null,
        studyDate: '20200101',
        studyTime: '101010',
        studyId: '7',
        studyDescription: null,
      },
      algorithm: { type: 'MANUAL', name: null, version: null },
      creator: 'reader@example.org',
    });
    const keptFile = path.join(work, 'seg-kept.dcm');
    writeFileSync(keptFile, kept.bytes);
    expect(dciodvfyErrors(keptFile)).toEqual([]);
    const keptBack = readSeg(kept.bytes);
    expect(keptBack.dataset.PatientID).toBe('SV-4471-QQX');
    expect(keptBack.segment.SegmentAlgorithmType).toBe('MANUAL');
    expect(keptBack.segment.SegmentAlgorithmName).toBeUndefined();
  });
});
