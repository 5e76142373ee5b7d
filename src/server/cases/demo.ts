import type { Kysely } from 'kysely';
import { countCases } from '../db/cases.js';
import type { Database } from '../db/tables.js';
import { writeNiftiGz } from '../nifti/write.js';
import type { VolumeStore } from '../volumes/store.js';
import { PHANTOM_VOXEL_MM, generatePhantom } from './phantom.js';
import type { PreparedVolume } from './prepare.js';
import { createCase } from './service.js';

/** The seeds of the demo cases: fixed, so every fresh install shows the same six cases. */
export const DEMO_SEEDS = [101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112];

export function phantomVolumes(seed: number): PreparedVolume[] {
  const p = generatePhantom(seed);
  const facts = (datatype: 'float32' | 'uint8') => ({
    dims: p.dims,
    voxelSizeMm: [PHANTOM_VOXEL_MM, PHANTOM_VOXEL_MM, PHANTOM_VOXEL_MM] as [number, number, number],
    datatype,
    affine: p.affine,
    frames: 1,
  });
  return [
    {
      role: 'dwi',
      stored: writeNiftiGz({
        dims: p.dims,
        affine: p.affine,
        datatype: 'float32',
        data: p.dwi,
        description: 'strokeview phantom DWI b1000',
      }),
      facts: facts('float32'),
    },
    {
      role: 'adc',
      stored: writeNiftiGz({
        dims: p.dims,
        affine: p.affine,
        datatype: 'float32',
        data: p.adc,
        description: 'strokeview phantom ADC 1e-6 mm2/s',
      }),
      facts: { ...facts('float32'), adcUnit: '1e-6' },
    },
    {
      role: 'flair',
      stored: writeNiftiGz({ dims: p.dims, affine: p.affine, datatype: 'float32', data: p.flair, description: 'strokeview phantom FLAIR' }),
      facts: facts('float32'),
    },
    {
      role: 'mask',
      stored: writeNiftiGz({
        dims: p.dims,
        affine: p.affine,
        datatype: 'uint8',
        data: p.mask,
        description: 'strokeview phantom lesion mask',
      }),
      facts: facts('uint8'),
    },
  ];
}

/**
 * On a database with no demo cases, creates `count` phantom cases (owner-less: everyone sees
 * them). Returns how many it created. Replicas booting together: the subject id is unique per
 * demo case, so a second seeder's inserts fail and it stops.
 */
export async function seedDemoCases(db: Kysely<Database>, store: VolumeStore, count: number): Promise<number> {
  if (count <= 0 || (await countCases(db, { source: 'demo' })) > 0) return 0;
  let created = 0;
  for (const seed of DEMO_SEEDS.slice(0, count)) {
    const subjectId = `phantom-${seed}`;
    try {
      await createCase(db, store, { ownerId: null, name: `Demo phantom ${seed - 100}`, source: 'demo', subjectId }, phantomVolumes(seed));
      created++;
    } catch (err) {
      if ((err as { code?: string }).code === '23505') return created; // another process is seeding
      throw err;
    }
  }
  return created;
}
