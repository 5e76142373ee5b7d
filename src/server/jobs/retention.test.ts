import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { createGuest, register } from '../auth/service.js';
import { phantomVolumes } from '../cases/demo.js';
import { createCase } from '../cases/service.js';
import { insertVolume } from '../db/volumes.js';
import { insertJob, linkJobVolume, updateJob } from '../db/jobs.js';
import { parseEnv } from '../env.js';
import { describeEachDatabase } from '../test/databases.js';
import { FsVolumeStore } from '../volumes/store.js';
import { runRetention } from './retention.js';

describeEachDatabase('retention clean-up', (current) => {
  it('removes expired jobs and their masks, expired sessions and idle guests; keeps what is live', async () => {
    const { db } = current().handle;
    const store = new FsVolumeStore(mkdtempSync(path.join(tmpdir(), 'sv-ret-')));
    const env = parseEnv({});
    const meta = { ip: null, userAgent: null };
    const user = (await register(db, env, { email: 'r@x.org', password: 'correct horse battery' }, meta)).user;
    const guest = (await createGuest(db, env, meta)).user;
    const caseId = await createCase(
      db,
      store,
      { ownerId: user.id, name: 'c', source: 'upload' },
      phantomVolumes(101).filter((v) => v.role !== 'flair'),
    );
    const mask = phantomVolumes(102).find((v) => v.role === 'mask')!;
    const put = await store.put(mask.stored);
    const maskId = await insertVolume(db, {
      sha256: put.sha256,
      bytes: mask.stored.length,
      dims: mask.facts.dims,
      voxelSizeMm: mask.facts.voxelSizeMm,
      datatype: 'uint8',
      affine: mask.facts.affine,
      frames: 1,
    });
    const expired = await insertJob(db, {
      ownerId: user.id,
      caseId,
      modelIds: ['adc-core-v1'],
      idempotencyKey: null,
      expiresAt: new Date(Date.now() - 1000),
    });
    await updateJob(db, expired.id, { status: 'succeeded' });
    await linkJobVolume(db, expired.id, 'mask', maskId);
    const live = await insertJob(db, {
      ownerId: user.id,
      caseId,
      modelIds: ['adc-core-v1'],
      idempotencyKey: null,
      expiresAt: new Date(Date.now() + 86_400_000),
    });
    // the mask volume and the guest are old enough to collect; the guest's session has expired
    await sql`update volumes set created_at = now() - interval '1 hour'`.execute(db);
    await sql`update users set created_at = now() - interval '2 days' where id = ${guest.id}`.execute(db);
    await sql`update sessions set expires_at = now() - interval '1 minute' where user_id = ${guest.id}`.execute(db);

    // failed sign-ins: an unknown email's old one goes, a recent one stays (its window is open)
    await sql`insert into sign_in_failures (email, created_at) values ('nobody@x.org', now() - interval '20 minutes'), ('nobody@x.org', now() - interval '1 minute')`.execute(
      db,
    );

    const removed = await runRetention(db, store, { signInFailureWindowMs: 15 * 60_000 });
    expect(removed).toMatchObject({ jobs: 1, sessions: 1, guests: 1, signInFailures: 1, volumes: 1 });
    expect(await db.selectFrom('sign_in_failures').select('email').execute()).toEqual([{ email: 'nobody@x.org' }]);
    const jobs = await db.selectFrom('jobs').select('id').execute();
    expect(jobs.map((j) => j.id)).toEqual([live.id]);
    expect(await db.selectFrom('users').select('email').execute()).toEqual([{ email: 'r@x.org' }]);
    const files = readdirSync(store.root, { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('.nii.gz'));
    expect(files).toHaveLength(3); // the case's DWI, ADC and mask stay
  });
});
