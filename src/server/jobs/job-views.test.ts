import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import { expect, it } from 'vitest';
import { seedDemoCases } from '../cases/demo.js';
import { caseVolumes } from '../db/cases.js';
import { insertJob, updateJob } from '../db/jobs.js';
import { insertUser } from '../db/users.js';
import { describeEachDatabase } from '../test/databases.js';
import { createVolumeSigner } from '../volumes/signing.js';
import { FsVolumeStore } from '../volumes/store.js';
import { toJobViews } from './service.js';

/** Counts the queries a Kysely instance runs. */
class CountQueries implements KyselyPlugin {
  count = 0;
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    this.count++;
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}

describeEachDatabase('job views', (current) => {
  it('a page of 50 finished jobs, each with two masks, costs two queries, not one per mask (#16 item 8)', async () => {
    const db = current().handle.db;
    const store = new FsVolumeStore(mkdtempSync(path.join(tmpdir(), 'sv-views-')));
    await seedDemoCases(db, store, 2);
    const cases = await db.selectFrom('cases').select(['id', 'name']).orderBy('name').execute();
    const user = await insertUser(db, { email: 'views@example.org', password_hash: null, role: 'user' });
    const rows = [];
    for (let i = 0; i < 50; i++) {
      const c = cases[i % 2]!;
      const vols = await caseVolumes(db, c.id);
      const job = await insertJob(db, {
        ownerId: user.id,
        caseId: c.id,
        modelIds: ['a', 'b'],
        idempotencyKey: null,
        expiresAt: new Date(Date.now() + 86_400_000),
      });
      const result = {
        maskVolumeId: vols.find((v) => v.role === 'mask')!.id,
        perModel: [
          { modelId: 'a', volumeId: vols.find((v) => v.role === 'mask')!.id },
          { modelId: 'b', volumeId: vols.find((v) => v.role === 'dwi')!.id },
        ],
        metrics: {
          dice: 1,
          predictedMl: 1,
          trueMl: 1,
          absVolumeDiffMl: 0,
          lesionCountPredicted: 1,
          lesionCountTrue: 1,
          lesionF1: 1,
          lesionCountDiff: 0,
        },
        notes: [],
      };
      rows.push((await updateJob(db, job.id, { status: 'succeeded', progress: 100, result: JSON.stringify(result) }))!);
    }
    const counter = new CountQueries();
    const links = { signer: createVolumeSigner('a-test-secret-that-is-long-enough-for-hmac', 3600), baseUrl: 'http://x' };
    const views = await toJobViews(db.withPlugin(counter), rows, links);
    expect(counter.count).toBe(2);
    expect(views).toHaveLength(50);
    for (const [i, v] of views.entries()) {
      expect(decodeURIComponent(v.result!.mask.downloadUrl)).toContain(`${cases[i % 2]!.name.replace(/ /g, '_')}_a_b_prediction.nii.gz`);
      expect(v.result!.perModel.map((p) => p.modelId)).toEqual(['a', 'b']);
    }
  });
});
