import type { Kysely } from 'kysely';
import type { Database } from '../db/tables.js';
import { isDomainError, systemErrorPhrase } from '../errors.js';
import type { SegmentResult } from '../segmentation/cpu.js';
import { storeVolumesIn } from '../volumes/service.js';
import type { VolumeStore } from '../volumes/store.js';
import type { StoredResult } from './service.js';

// How one run of a job ends: its result stored, or what its error means for the job.

/**
 * Stores the job's masks (content-addressed: a retried job adds nothing) inside the success
 * transaction (transitions.succeed), under their hashes' locks; says what to link.
 */
export async function storeResult(
  trx: Kysely<Database>,
  store: VolumeStore,
  result: SegmentResult,
): Promise<{ json: string; links: { name: string; volumeId: string }[] }> {
  // Every mask is uint8 on the DWI grid: the header facts come from the result, not a re-read.
  const facts = { dims: result.dims, voxelSizeMm: result.voxelSizeMm, datatype: 'uint8' as const, affine: result.affine, frames: 1 };
  const masks = [result.maskNifti, ...(result.perModel.length > 1 ? result.perModel.map((m) => m.maskNifti) : [])];
  const { ids, created } = await storeVolumesIn(
    trx,
    store,
    masks.map((stored) => ({ stored, facts })),
  );
  try {
    const maskVolumeId = ids[0]!;
    const links = [{ name: 'mask', volumeId: maskVolumeId }];
    const perModel: StoredResult['perModel'] = result.perModel.map((m, i) => {
      const volumeId = result.perModel.length === 1 ? maskVolumeId : ids[i + 1]!;
      links.push({ name: `model:${m.modelId}`, volumeId });
      return { modelId: m.modelId, volumeId };
    });
    const stored: StoredResult = { maskVolumeId, perModel, metrics: result.metrics, notes: result.notes, lesions: result.lesions };
    return { json: JSON.stringify(stored), links };
  } catch (err) {
    await Promise.all(created.map((s) => store.remove(s)));
    throw err;
  }
}

/** What a failed run means for the job. */
export type Outcome =
  | { kind: 'failed'; message: string; error: string }
  | { kind: 'cancelled' }
  /** Shutting down: back to the queue for another worker. */
  | { kind: 'handed-back' }
  /** Unexplained: back to the queue to be retried (pg-boss counts the attempts). */
  | { kind: 'retry' };

/**
 * What of an unexplained error the job's owner may read: a system error as a plain phrase (its
 * message names server paths), anything else by its first line, bounded.
 */
export function safeError(err: unknown): string {
  const phrase = systemErrorPhrase(err);
  if (phrase) return phrase;
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0]!.slice(0, 300) || 'an unexpected error';
}

export function outcomeOf(err: unknown, at: { timedOut: boolean; draining: boolean; timeoutSeconds: number }): Outcome {
  if (isDomainError(err, 'cancelled')) {
    if (at.timedOut)
      return { kind: 'failed', message: 'Timed out', error: `The segmentation took longer than ${at.timeoutSeconds} s and was stopped` };
    return at.draining ? { kind: 'handed-back' } : { kind: 'cancelled' };
  }
  // The case's data is the problem: retrying cannot help.
  if (isDomainError(err, 'unprocessable')) return { kind: 'failed', message: 'Failed', error: err.message };
  return { kind: 'retry' };
}
