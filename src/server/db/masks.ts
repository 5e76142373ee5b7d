import type { Kysely } from 'kysely';
import type { Database, MaskVersionRow } from './tables.js';

type Db = Kysely<Database>;

const COLUMNS = [
  'mv.id',
  'mv.case_id',
  'mv.author_id',
  'mv.version',
  'mv.volume_id',
  'mv.job_id',
  'mv.note',
  'mv.voxels',
  'mv.volume_ml',
  'mv.dice_vs_prediction',
  'mv.dice_vs_truth',
  'mv.lesions',
  'mv.provenance',
  'mv.created_at',
] as const;

/** A version row with what its view shows: the author's email and the case's name. */
export type MaskVersionListed = MaskVersionRow & { email: string; case_name: string };

const listed = (db: Db) =>
  db
    .selectFrom('mask_versions as mv')
    .innerJoin('users as u', 'u.id', 'mv.author_id')
    .innerJoin('cases as c', 'c.id', 'mv.case_id')
    .select([...COLUMNS, 'u.email', 'c.name as case_name']);

/** The versions of a case, newest first: by these authors, or everyone's (`authorIds` null). */
export function listMaskVersionRows(db: Db, caseId: string, authorIds: string[] | null): Promise<MaskVersionListed[]> {
  let q = listed(db).where('mv.case_id', '=', caseId).orderBy('mv.created_at', 'desc').orderBy('mv.version', 'desc');
  if (authorIds !== null) {
    if (!authorIds.length) return Promise.resolve([]);
    q = q.where('mv.author_id', 'in', authorIds);
  }
  return q.execute();
}

export function findMaskVersionRow(db: Db, id: string): Promise<MaskVersionListed | undefined> {
  return listed(db).where('mv.id', '=', id).executeTakeFirst();
}

/**
 * Inserts the next version for this case and author (numbered per case and author; the unique
 * constraint refuses a concurrent duplicate). Run inside the transaction that stored its volume.
 */
export async function insertMaskVersion(
  trx: Db,
  v: {
    caseId: string;
    authorId: string;
    volumeId: string;
    jobId: string | null;
    note: string;
    voxels: number;
    volumeMl: number;
    diceVsPrediction: number | null;
    diceVsTruth: number | null;
    lesions: unknown;
    provenance: unknown;
  },
): Promise<string> {
  const last = await trx
    .selectFrom('mask_versions')
    .select((eb) => eb.fn.max('version').as('v'))
    .where('case_id', '=', v.caseId)
    .where('author_id', '=', v.authorId)
    .executeTakeFirst();
  const inserted = await trx
    .insertInto('mask_versions')
    .values({
      case_id: v.caseId,
      author_id: v.authorId,
      version: Number(last?.v ?? 0) + 1,
      volume_id: v.volumeId,
      job_id: v.jobId,
      note: v.note,
      voxels: v.voxels,
      volume_ml: v.volumeMl,
      dice_vs_prediction: v.diceVsPrediction,
      dice_vs_truth: v.diceVsTruth,
      lesions: JSON.stringify(v.lesions),
      provenance: JSON.stringify(v.provenance),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return inserted.id;
}

export async function deleteMaskVersionRow(db: Db, id: string): Promise<void> {
  await db.deleteFrom('mask_versions').where('id', '=', id).execute();
}

/** An author's versions: of one case, or in all (`caseId` null). */
export async function countMaskVersions(db: Db, authorId: string, caseId: string | null): Promise<number> {
  let q = db
    .selectFrom('mask_versions')
    .select(({ fn }) => fn.countAll<string>().as('n'))
    .where('author_id', '=', authorId);
  if (caseId !== null) q = q.where('case_id', '=', caseId);
  return Number((await q.executeTakeFirstOrThrow()).n);
}
