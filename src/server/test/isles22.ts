import { existsSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './process.js';

/**
 * The real ISLES'22 case beside the project (`../shared/data/isles22`, CC BY-SA 4.0: read from
 * there, never copied into the repository). Tests that need it are skipped — with this folder
 * named in their title — where it is missing.
 */
export const ISLES22_DIR = process.env.STROKEVIEW_ISLES22_DIR ?? path.resolve(ROOT, '../shared/data/isles22');
const raw = (s: string) => path.join(ISLES22_DIR, 'rawdata/sub-strokecase0009/ses-0001', `sub-strokecase0009_ses-0001_${s}.nii.gz`);
export const ISLES22_FILES = {
  dwi: raw('dwi'),
  adc: raw('adc'),
  flair: raw('flair'),
  mask: path.join(ISLES22_DIR, 'derivatives/sub-strokecase0009/ses-0001/sub-strokecase0009_ses-0001_msk.nii.gz'),
};
export const HAVE_ISLES22 = Object.values(ISLES22_FILES).every((f) => existsSync(f));
export const ISLES22_TITLE = HAVE_ISLES22
  ? "the real ISLES'22 case sub-strokecase0009"
  : `the real ISLES'22 case — SKIPPED: ${ISLES22_DIR} is missing`;
