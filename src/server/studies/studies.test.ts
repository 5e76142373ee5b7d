import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { CaseDetail, CaseSummary } from '../../shared/cases.js';

type CasePage = { items: CaseSummary[] };
import type { JobView } from '../../shared/jobs.js';
import type { MaskVersionView } from '../../shared/masks.js';
import type { StudyDetail, StudySummary } from '../../shared/studies.js';
import { phantomVolumes, seedDemoCases } from '../cases/demo.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry } from '../segmentation/models.js';
import { TestBrowser } from '../test/browser.js';
import { describeEachDatabase } from '../test/databases.js';
import { type Running, serveStack } from '../test/stack.js';

// Studies and their members over real HTTP (#27): who sees a study and its cases, who may change
// what, and that a second rater sees the first rater's corrected mask.

let models: ModelRegistry;
beforeAll(async () => {
  models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
});
afterAll(async () => {
  await models?.close();
});

describeEachDatabase('studies, members and roles', (current) => {
  const running: Running = [];
  afterEach(async () => {
    for (const r of running.splice(0).reverse()) await r.stop();
  });

  async function setup() {
    const database = current().handle;
    const { store, server } = await serveStack({ database, models, running, prefix: 'sv-studies-' });
    await seedDemoCases(database.db, store, 1);
    const user = async (email: string) => {
      const b = new TestBrowser(server.url);
      const r = await b.mutate('auth.register', { email, password: 'correct horse battery' });
      expect(r.status).toBe(200);
      return b;
    };
    const [owner, editor, viewer, outsider] = await Promise.all(
      ['owner@x.org', 'editor@x.org', 'viewer@x.org', 'outsider@x.org'].map(user),
    );
    // the owner's own (private) case
    const vols = Object.fromEntries(phantomVolumes(107).map((v) => [v.role, v.stored]));
    const fd = new FormData();
    fd.set('name', 'Patient 7');
    for (const role of ['dwi', 'adc', 'mask'] as const) fd.set(role, new File([new Uint8Array(vols[role]!)], `p7_${role}.nii.gz`));
    const uploaded = await owner!.upload<CaseDetail>('cases.upload', fd);
    expect(uploaded.status).toBe(200);
    return { server, owner: owner!, editor: editor!, viewer: viewer!, outsider: outsider!, privateCase: uploaded.data };
  }

  const form = (fields: Record<string, string | Uint8Array>) => {
    const fd = new FormData();
    for (const [k, v] of Object.entries(fields)) fd.set(k, typeof v === 'string' ? v : new File([new Uint8Array(v)], 'mask.nii.gz'));
    return fd;
  };

  it('members see the study and its cases under their roles; a non-member gets NOT_FOUND for every id', async () => {
    const { owner, editor, viewer, outsider, privateCase } = await setup();
    const created = await owner.mutate<StudyDetail>('studies.create', { name: 'Audit 2026', description: 'Stroke audit' });
    expect(created.status).toBe(200);
    const study = created.data;
    expect(study).toMatchObject({ name: 'Audit 2026', role: 'owner', members: 1, cases: 0 });

    // before sharing, the private case is the owner's alone
    expect((await editor.query('cases.byId', { id: privateCase.id })).status).toBe(404);

    expect((await owner.mutate('studies.members.set', { studyId: study.id, email: 'editor@x.org', role: 'editor' })).status).toBe(200);
    const withViewer = await owner.mutate<StudyDetail>('studies.members.set', { studyId: study.id, email: 'VIEWER@x.org', role: 'viewer' });
    expect(withViewer.data.memberList.map((m) => [m.email, m.role])).toEqual([
      ['owner@x.org', 'owner'],
      ['editor@x.org', 'editor'],
      ['viewer@x.org', 'viewer'],
    ]);
    const added = await owner.mutate<{ added: number }>('studies.cases.add', {
      studyId: study.id,
      caseIds: [privateCase.id, privateCase.id],
    });
    expect(added.data).toEqual({ added: 1 });

    // members: the study in their list with their role, the case readable and in cases.list
    for (const [b, role] of [
      [editor, 'editor'],
      [viewer, 'viewer'],
    ] as const) {
      const list = await b.query<StudySummary[]>('studies.list');
      expect(list.data.map((s) => [s.name, s.role, s.cases, s.members])).toEqual([['Audit 2026', role, 1, 3]]);
      expect((await b.query<StudyDetail>('studies.byId', { id: study.id })).data.caseList.map((c) => c.name)).toEqual(['Patient 7']);
      expect((await b.query<CaseDetail>('cases.byId', { id: privateCase.id })).data).toMatchObject({ name: 'Patient 7', owned: false });
      expect((await b.query<CasePage>('cases.list')).data.items.map((c) => c.name)).toContain('Patient 7');
    }

    // a non-member: nothing, and the same answer as for an id that does not exist
    expect((await outsider.query<StudySummary[]>('studies.list')).data).toEqual([]);
    for (const [proc, input] of [
      ['studies.byId', { id: study.id }],
      ['cases.byId', { id: privateCase.id }],
    ] as const) {
      const r = await outsider.query(proc, input);
      expect([r.status, r.body.error?.data.code]).toEqual([404, 'NOT_FOUND']);
    }
    for (const [proc, input] of [
      ['studies.members.set', { studyId: study.id, email: 'outsider@x.org', role: 'owner' }],
      ['studies.cases.add', { studyId: study.id, caseIds: [privateCase.id] }],
      ['studies.delete', { id: study.id }],
      ['jobs.create', { caseId: privateCase.id }],
    ] as const) {
      const r = await outsider.mutate(proc, input);
      expect([proc, r.status]).toEqual([proc, 404]);
    }
    expect((await outsider.query<CasePage>('cases.list')).data.items.map((c) => c.name)).not.toContain('Patient 7');

    // removing a member takes their access away at once
    const viewerId = withViewer.data.memberList.find((m) => m.email === 'viewer@x.org')!.userId;
    expect((await owner.mutate('studies.members.remove', { studyId: study.id, userId: viewerId })).status).toBe(200);
    expect((await viewer.query('cases.byId', { id: privateCase.id })).status).toBe(404);
    expect((await viewer.query('studies.byId', { id: study.id })).status).toBe(404);
  });

  it('an editor runs a model and saves a mask; a viewer may not (FORBIDDEN saying why); a second rater sees the first one’s version with its author', async () => {
    const { owner, editor, viewer, outsider, privateCase } = await setup();
    const study = (await owner.mutate<StudyDetail>('studies.create', { name: 'Two raters' })).data;
    await owner.mutate('studies.members.set', { studyId: study.id, email: 'editor@x.org', role: 'editor' });
    await owner.mutate('studies.members.set', { studyId: study.id, email: 'viewer@x.org', role: 'viewer' });
    await owner.mutate('studies.cases.add', { studyId: study.id, caseIds: [privateCase.id] });

    const job = await editor.mutate<JobView>('jobs.create', { caseId: privateCase.id });
    expect(job.status).toBe(200);
    const refused = await viewer.mutate('jobs.create', { caseId: privateCase.id });
    expect([refused.status, refused.body.error?.message]).toEqual([
      403,
      "You are a viewer of this case's study: an editor or the owner may run models and save masks",
    ]);

    const dwi = privateCase.volumes.find((v) => v.role === 'dwi')!;
    const { writeNiftiGz } = await import('../nifti/write.js');
    const mask = (n: number) => {
      const data = new Uint8Array(dwi.dims[0] * dwi.dims[1] * dwi.dims[2]);
      data.fill(1, 5000, 5000 + n);
      return writeNiftiGz({ dims: dwi.dims, affine: dwi.affine, datatype: 'uint8', data });
    };
    const first = await owner.upload<MaskVersionView>('masks.save', form({ caseId: privateCase.id, file: mask(30), note: 'rater 1' }));
    expect(first.status).toBe(200);
    const second = await editor.upload<MaskVersionView>('masks.save', form({ caseId: privateCase.id, file: mask(50), note: 'rater 2' }));
    expect(second.status).toBe(200);
    const viewerSave = await viewer.upload('masks.save', form({ caseId: privateCase.id, file: mask(10) }));
    expect(viewerSave.status).toBe(403);

    // every member sees both raters' versions, each with its author; an outsider sees neither
    for (const b of [owner, editor, viewer]) {
      const list = await b.query<{ items: MaskVersionView[] }>('masks.list', { caseId: privateCase.id });
      expect(list.status).toBe(200);
      expect(list.data.items.map((v) => [v.author.email, v.note, v.voxels]).sort()).toEqual([
        ['editor@x.org', 'rater 2', 50],
        ['owner@x.org', 'rater 1', 30],
      ]);
      expect((await b.query<MaskVersionView>('masks.byId', { id: first.data.id })).data.author.email).toBe('owner@x.org');
    }
    expect((await outsider.query('masks.byId', { id: first.data.id })).status).toBe(404);
    expect((await outsider.query('masks.list', { caseId: privateCase.id })).status).toBe(404);
    // deleting stays the author's
    const del = await editor.mutate('masks.delete', { id: first.data.id });
    expect([del.status, del.body.error?.message]).toEqual([403, 'Only its author (or an administrator) may delete a mask version']);
  });

  it('the rules of the study itself: owner-only member management, one owner kept, cases added only by who may share them, a case in two studies', async () => {
    const { owner, editor, viewer, outsider, privateCase } = await setup();
    const a = (await owner.mutate<StudyDetail>('studies.create', { name: 'A' })).data;
    await owner.mutate('studies.members.set', { studyId: a.id, email: 'editor@x.org', role: 'editor' });

    const r1 = await editor.mutate('studies.members.set', { studyId: a.id, email: 'viewer@x.org', role: 'viewer' });
    expect([r1.status, r1.body.error?.message]).toEqual([403, "Only the study's owner may manage its members; you are an editor of it"]);
    const ownerId = (await owner.query<StudyDetail>('studies.byId', { id: a.id })).data.memberList.find((m) => m.role === 'owner')!.userId;
    const r2 = await owner.mutate('studies.members.remove', { studyId: a.id, userId: ownerId });
    expect([r2.status, r2.body.error?.message]).toEqual([409, 'A study keeps at least one owner: make another member owner first']);
    const r3 = await owner.mutate('studies.members.set', { studyId: a.id, email: 'owner@x.org', role: 'viewer' });
    expect(r3.status).toBe(409);
    const r4 = await owner.mutate('studies.members.set', { studyId: a.id, email: 'nobody@x.org', role: 'viewer' });
    expect([r4.status, r4.body.error?.data.fieldErrors]).toEqual([
      404,
      { email: ['No account with the email nobody@x.org; ask them to register first'] },
    ]);
    const r5 = await owner.mutate('studies.create', { name: '   ' });
    expect([r5.status, r5.body.error?.data.fieldErrors?.name]).toEqual([400, ['Give the study a name']]);

    // the editor may add a shared demo case, not the owner's private one they only see through A
    const demo = (await editor.query<CasePage>('cases.list')).data.items.find((c) => c.demo)!;
    await owner.mutate('studies.cases.add', { studyId: a.id, caseIds: [privateCase.id] });
    const b = (await editor.mutate<StudyDetail>('studies.create', { name: 'B (the editor’s)' })).data;
    expect((await editor.mutate('studies.cases.add', { studyId: b.id, caseIds: [demo.id] })).data).toEqual({ added: 1 });
    const r6 = await editor.mutate('studies.cases.add', { studyId: b.id, caseIds: [demo.id, privateCase.id] });
    expect([r6.status, r6.body.error?.message]).toEqual([403, 'Only the owner of case Patient 7 may add it to a study']);
    expect((await editor.query<StudyDetail>('studies.byId', { id: b.id })).data.caseList.map((c) => c.id)).toEqual([demo.id]);

    // one case, two studies: leaving one keeps access through the other
    const c = (await owner.mutate<StudyDetail>('studies.create', { name: 'C' })).data;
    await owner.mutate('studies.cases.add', { studyId: c.id, caseIds: [privateCase.id] });
    await owner.mutate('studies.members.set', { studyId: c.id, email: 'viewer@x.org', role: 'viewer' });
    await owner.mutate('studies.members.set', { studyId: a.id, email: 'viewer@x.org', role: 'viewer' });
    const viewerId = (await viewer.query<StudyDetail>('studies.byId', { id: a.id })).data.memberList.find(
      (m) => m.email === 'viewer@x.org',
    )!.userId;
    expect((await viewer.mutate('studies.members.remove', { studyId: a.id, userId: viewerId })).status).toBe(200);
    expect((await viewer.query('cases.byId', { id: privateCase.id })).status).toBe(200);
    // deleting a study keeps its cases
    expect((await owner.mutate('studies.delete', { id: c.id })).status).toBe(200);
    expect((await viewer.query('cases.byId', { id: privateCase.id })).status).toBe(404);
    expect((await owner.query('cases.byId', { id: privateCase.id })).status).toBe(200);
    expect((await outsider.query('studies.byId', { id: c.id })).status).toBe(404);
  });
});
