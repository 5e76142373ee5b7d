import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredDicomSeriesRow } from '../db/dicom.js';
import { readNifti } from '../nifti/read.js';
import { HAVE_PHILIPS, PHILIPS_SKIP_NOTE, convertPhilipsSeries, dciodvfyErrors, tempDir } from '../test/dicom.js';
import { MR_IMAGE_SOP_CLASS_UID, buildAdcSeries, compareAdcSeries, readAdcImage } from './adc-series.js';
import type { ConvertResult } from './convert.js';

// #26: the ADC computed from the real Philips diffusion series, as a derived MR series — one image
// per source slice, each read back with dcmjs to the stored ADC's rounded voxels at its own plane,
// and valid for dciodvfy.

describe.skipIf(!HAVE_PHILIPS)(`derived ADC series${PHILIPS_SKIP_NOTE}`, () => {
  let converted: ConvertResult;
  let adcSource: StoredDicomSeriesRow;
  let work: string;
  beforeAll(async () => {
    work = tempDir('sv-adc-');
    converted = await convertPhilipsSeries();
    adcSource = converted.stored.find((s) => s.role === 'adc')! as StoredDicomSeriesRow;
  }, 120_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('one MR image per source slice, DERIVED\\SECONDARY\\ADC, the ADC voxels exact (rounded), dciodvfy without errors', () => {
    expect(adcSource.how).toBe('computed');
    const built = buildAdcSeries({
      adc: converted.volumes.adc!,
      studyInstanceUid: converted.report.studyInstanceUid,
      frameOfReferenceUid: converted.frameOfReferenceUid,
      source: adcSource,
      patient: null,
      softwareVersion: '0.0.0-test',
      now: Date.UTC(2026, 11, 2, 3, 0, 0),
    });
    expect(built.files).toHaveLength(32);
    built.files.forEach((bytes, n) => {
      const file = path.join(work, `adc-${n}.dcm`);
      writeFileSync(file, bytes);
      expect(dciodvfyErrors(file), file).toEqual([]);
    });
    const images = built.files.map(readAdcImage);
    for (const img of images) {
      expect(img.sopClassUid).toBe(MR_IMAGE_SOP_CLASS_UID);
      expect(img.imageType).toEqual(['DERIVED', 'SECONDARY', 'ADC']);
      expect(img.seriesInstanceUid).toBe(built.seriesInstanceUid);
      expect(img.studyInstanceUid).toBe(converted.report.studyInstanceUid);
      expect(img.frameOfReferenceUid).toBe(converted.frameOfReferenceUid);
      expect(img.seriesInstanceUid).not.toBe(adcSource.seriesInstanceUid);
      expect(img.dataset.PatientIdentityRemoved).toBe('YES');
    }
    // Each image derives from the source images of its own slice.
    const sourceBySlice = new Map(adcSource.slices.map((s) => [s.imagePositionPatient!.map((x) => x.toFixed(2)).join(','), s]));
    for (const img of images) {
      const slice = sourceBySlice.get(img.ipp.map((x) => x.toFixed(2)).join(','))!;
      expect(slice).toBeDefined();
      const refs = (img.dataset.SourceImageSequence as { ReferencedSOPInstanceUID: string }[]).map((r) => r.ReferencedSOPInstanceUID);
      expect(refs).toEqual(slice.refs.map((r) => r.sopInstanceUid));
    }
    const adc = readNifti(converted.volumes.adc!);
    const check = compareAdcSeries(images, adc);
    expect(check.unplaced).toBe(0);
    expect(check.compared).toBe(adc.data.length);
    expect(check.differ, check.firstDifference ?? '').toBe(0);
    // Not a blank map: the head's ADC is there (median ≈ 765 ×10⁻⁶ mm²/s).
    const inHead = images.flatMap((img) => [...img.pixels].filter((v) => v > 0));
    expect(inHead.length).toBeGreaterThan(10_000);
  });
});
