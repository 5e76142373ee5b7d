import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Kysely } from 'kysely';
import type { VolumeRole } from '../../shared/cases.js';
import { caseExistsForSubject } from '../db/cases.js';
import type { Database } from '../db/tables.js';
import type { VolumeStore } from '../volumes/store.js';
import { prepareCaseVolumes } from './prepare.js';
import { isDomainError } from '../errors.js';
import { createCase } from './service.js';

/**
 * Imports a folder in the ISLES'22 layout (rawdata/sub-strokecaseNNNN/ses-0001/{dwi,anat}/…_dwi,
 * _adc, _FLAIR; derivatives/sub-…/ses-0001/…_msk) or the ISLES'24 one (sub-strokeNNNN/ses-02/…
 * _dwi, _adc, _lesion-msk), and the usual variants: any depth, .nii or .nii.gz, any case. Files
 * are grouped by the `sub-…` in their path and given a role by their suffix. Idempotent: a
 * subject already imported is skipped. Every skipped file or subject is reported with its reason.
 */

export interface ImportReport {
  imported: { subject: string; caseId: string; roles: VolumeRole[] }[];
  skipped: { path: string; reason: string }[];
}

const ROLE_PATTERNS: [VolumeRole, RegExp][] = [
  ['mask', /(_|-)(lesion[-_]?)?(msk|mask|seg)$/i],
  ['adc', /_adc$/i],
  ['dwi', /_dwi$/i],
  ['flair', /_flair$/i],
];

export function roleOfFile(file: string): VolumeRole | undefined {
  const stem = path.basename(file).replace(/\.nii(\.gz)?$/i, '');
  return ROLE_PATTERNS.find(([, re]) => re.test(stem))?.[0];
}

export function subjectOfPath(file: string): string | undefined {
  const parts = file.split(path.sep).reverse();
  for (const p of parts) {
    const m = /^sub-([A-Za-z0-9]+)/.exec(p);
    if (m) return `sub-${m[1]}`;
  }
  return undefined;
}

async function walk(dir: string, out: string[] = []): Promise<string[]> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await walk(full, out);
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

export async function importIsles(
  db: Kysely<Database>,
  store: VolumeStore,
  root: string,
  opts: { ownerId?: string | null; maxVoxels: number; onProgress?: (line: string) => void },
): Promise<ImportReport> {
  const report: ImportReport = { imported: [], skipped: [] };
  const rel = (f: string) => path.relative(root, f) || f;
  const subjects = new Map<string, Map<VolumeRole, string>>();
  for (const file of (await walk(root)).sort()) {
    if (!/\.nii(\.gz)?$/i.test(file)) {
      if (!/\.(json|tsv|md|txt|bval|bvec)$/i.test(file)) report.skipped.push({ path: rel(file), reason: 'not a NIfTI file' });
      continue;
    }
    const subject = subjectOfPath(rel(file));
    const role = roleOfFile(file);
    if (!subject) {
      report.skipped.push({ path: rel(file), reason: 'no sub-… folder or prefix names its subject' });
      continue;
    }
    if (!role) {
      report.skipped.push({ path: rel(file), reason: 'not a DWI, ADC, FLAIR or lesion mask (by its name)' });
      continue;
    }
    const roles = subjects.get(subject) ?? new Map<VolumeRole, string>();
    if (roles.has(role)) {
      report.skipped.push({ path: rel(file), reason: `a second ${role} for ${subject}; kept ${rel(roles.get(role)!)}` });
      continue;
    }
    roles.set(role, file);
    subjects.set(subject, roles);
  }
  for (const [subject, roles] of [...subjects].sort(([a], [b]) => a.localeCompare(b))) {
    if (await caseExistsForSubject(db, 'import', subject)) {
      report.skipped.push({ path: subject, reason: 'already imported' });
      continue;
    }
    const files: Partial<Record<VolumeRole, Uint8Array>> = {};
    for (const [role, file] of roles) files[role] = await readFile(file);
    try {
      const prepared = prepareCaseVolumes(files, { maxVoxels: opts.maxVoxels });
      const caseId = await createCase(
        db,
        store,
        { ownerId: opts.ownerId ?? null, name: subject, source: 'import', subjectId: subject },
        prepared,
      );
      report.imported.push({ subject, caseId, roles: prepared.map((p) => p.role) });
      opts.onProgress?.(`imported ${subject} (${prepared.map((p) => p.role).join(', ')})`);
    } catch (err) {
      if (!isDomainError(err, 'unprocessable')) throw err;
      const role = err.field as VolumeRole | undefined;
      const where = role && roles.get(role) ? rel(roles.get(role)!) : subject;
      report.skipped.push({ path: where, reason: err.message });
      opts.onProgress?.(`skipped ${subject}: ${err.message}`);
    }
  }
  return report;
}

/** The ids of the shared-import cases of these subjects (those that exist). */
export async function importedCaseIds(db: Kysely<Database>, subjects: string[]): Promise<string[]> {
  if (!subjects.length) return [];
  const rows = await db.selectFrom('cases').select('id').where('source', '=', 'import').where('subject_id', 'in', subjects).execute();
  return rows.map((r) => r.id);
}
