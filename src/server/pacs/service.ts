import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DicomImport } from '../../shared/dicom.js';
import type { AuthUser } from '../auth/service.js';
import { type DicomDeps, uploadDicomCase } from '../dicom/service.js';
import { unavailable } from '../errors.js';
import { type DicomWebClient, type PacsStudy, pacsClient } from './dicomweb.js';

/**
 * The deployment's PACS: study search (QIDO-RS) and a study pulled into a case (WADO-RS, then the
 * same import as an upload: the same checks, limits, roles and patient rules). Pushing a SEG back
 * is a durable job (push.ts).
 */

export function requirePacs(env: DicomDeps['config']): DicomWebClient {
  const client = pacsClient(env);
  if (!client) throw unavailable('No PACS is configured on this server (an administrator sets PACS_URL)', 3600);
  return client;
}

export async function searchPacsStudies(
  deps: Pick<DicomDeps, 'config'>,
  filters: { patientId?: string | undefined; studyDate?: string | undefined; studyInstanceUid?: string | undefined; limit: number },
): Promise<PacsStudy[]> {
  const q: Record<string, string> = {};
  if (filters.patientId) q.PatientID = filters.patientId;
  if (filters.studyDate) q.StudyDate = filters.studyDate;
  if (filters.studyInstanceUid) q.StudyInstanceUID = filters.studyInstanceUid;
  return requirePacs(deps.config).searchStudies(q, filters.limit);
}

/** Retrieves a study's instances into a spool folder and imports them as one case; the folder is removed whatever happens. */
export async function pullPacsStudy(
  deps: DicomDeps,
  user: AuthUser,
  input: { studyInstanceUid: string; name?: string | undefined; workDir: string; dryRun: boolean },
): Promise<{ caseId: string | null; report: DicomImport; instances: number }> {
  const pacs = requirePacs(deps.config);
  const dir = path.join(input.workDir, `pacs-${Date.now()}-${randomBytes(6).toString('hex')}`);
  await mkdir(dir, { recursive: true });
  try {
    const inputs: { path: string; name: string }[] = [];
    const instances = await pacs.retrieveStudy(input.studyInstanceUid, async (bytes, i) => {
      const name = `instance-${String(i + 1).padStart(5, '0')}.dcm`;
      await writeFile(path.join(dir, name), bytes);
      inputs.push({ path: path.join(dir, name), name });
    });
    const { caseId, report } = await uploadDicomCase(deps, user, {
      name: input.name,
      inputs,
      workDir: input.workDir,
      choice: {},
      dryRun: input.dryRun,
    });
    return { caseId, report, instances };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
