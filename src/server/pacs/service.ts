import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import type { DicomImport } from '../../shared/dicom.js';
import type { AuthUser } from '../auth/service.js';
import { type DicomDeps, uploadDicomCase } from '../dicom/service.js';
import { tooLarge, unavailable } from '../errors.js';
import { dicomLimits } from '../dicom/limits.js';
import { MiB } from '../../shared/units.js';
import { type DicomWebClient, type PacsStudy, pacsClient } from './dicomweb.js';

const mib = (bytes: number) => `${(bytes / MiB).toFixed(bytes < 10 * MiB ? 1 : 0)} MiB`;

/**
 * The deployment's PACS: study search (QIDO-RS) and a study pulled into a case (WADO-RS, then the
 * same import as an upload: the same checks, limits, roles and patient rules; the answer streamed
 * to disk within those limits). Pushing a SEG back
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

/**
 * Retrieves a study's instances into a spool folder and imports them as one case; the folder is
 * removed whatever happens. The WADO-RS answer is streamed to disk part by part, and the import's
 * limits (files, bytes in all, bytes per file) hold while it streams: a PACS answering more is cut
 * off at the limit (413), not read to its end.
 */
export async function pullPacsStudy(
  deps: DicomDeps,
  user: AuthUser,
  input: { studyInstanceUid: string; name?: string | undefined; workDir: string; dryRun: boolean },
): Promise<{ caseId: string | null; report: DicomImport; instances: number }> {
  const pacs = requirePacs(deps.config);
  const limits = dicomLimits(deps.config, user.role);
  const dir = path.join(input.workDir, `pacs-${Date.now()}-${randomBytes(6).toString('hex')}`);
  await mkdir(dir, { recursive: true });
  const inputs: { path: string; name: string }[] = [];
  let file: FileHandle | null = null;
  try {
    let total = 0;
    let partBytes = 0;
    const instances = await pacs.retrieveStudy(input.studyInstanceUid, {
      start: async (i) => {
        if (i + 1 > limits.maxFiles) {
          throw tooLarge(`The study holds more than ${limits.maxFiles} instances, the import's limit; pull a smaller study`, {
            field: 'studyInstanceUid',
          });
        }
        const name = `instance-${String(i + 1).padStart(5, '0')}.dcm`;
        file = await open(path.join(dir, name), 'w');
        inputs.push({ path: path.join(dir, name), name });
        partBytes = 0;
      },
      data: async (chunk) => {
        partBytes += chunk.length;
        total += chunk.length;
        if (partBytes > limits.maxFileBytes) {
          throw tooLarge(`Instance ${inputs.length} of the study is over the limit of ${mib(limits.maxFileBytes)} per file`, {
            field: 'studyInstanceUid',
          });
        }
        if (total > limits.maxBytes) {
          throw tooLarge(`The study's instances come to more than ${mib(limits.maxBytes)}, the import's limit`, {
            field: 'studyInstanceUid',
          });
        }
        await file!.write(chunk);
      },
      end: async () => {
        await file!.close();
        file = null;
      },
    });
    const { caseId, report } = await uploadDicomCase(deps, user, {
      name: input.name,
      inputs,
      choice: {},
      dryRun: input.dryRun,
    });
    return { caseId, report, instances };
  } finally {
    await (file as FileHandle | null)?.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}
