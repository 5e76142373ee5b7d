// @vitest-environment happy-dom
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { renderHook, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { trpcClient } from '../../../server/test/live.js';
import { startLiveServer } from '../../../server/test/live-server.js';
import { freePort } from '../../../server/test/process.js';
import type { StudyRunSummary } from '../../../shared/studies.js';
import { viewerProviders } from '../../test/providers.js';
import { mintToken } from '../../test/token.js';
import { finishedOf, useOnFinishedChange, useRunProgress } from './useRunProgress.js';

// Long enough for real segmentations on a busy machine: a deadline, not a speed target.
const UNTIL_DONE = { timeout: 180_000, interval: 50 };
const CASES = 2;

// The built server as its own process, as useJobProgress's test runs it: a study of the demo
// cases run with its jobs held at inference until released.
describe('useRunProgress against a real server', () => {
  const open: { close(): Promise<unknown> }[] = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });

  async function start(env: Record<string, string> = {}) {
    const holdFile = path.join(tmpdir(), `sv-hold-run-${process.pid}-${Date.now()}`);
    const port = await freePort();
    (window as unknown as { happyDOM: { setURL(url: string): void } }).happyDOM.setURL(`http://127.0.0.1:${port}/studies`);
    const server = await startLiveServer({
      demoCases: CASES,
      env: { PORT: String(port), ORT_THREADS: '1', STROKEVIEW_TEST_HOLD: `infer:${holdFile}`, ...env },
    });
    open.push({ close: () => server.stop() });
    const token = mintToken(server.url, 'runner@x.org');
    const sdk = trpcClient(server.url, token);
    const cases = (await sdk.cases.list.query()).items;
    const study = await sdk.studies.create.mutate({ name: 'Held study' });
    await sdk.studies.cases.add.mutate({ studyId: study.id, caseIds: cases.map((c) => c.id) });
    const run = await sdk.studies.run.mutate({ studyId: study.id });
    const { Providers } = viewerProviders(server.url, token);
    return { sdk, run, held: { release: () => writeFileSync(holdFile, '') }, Providers };
  }

  /** The hook under test and what the dashboard does with it: a table refetch per call of onChange. */
  function follow(runId: string, Providers: ReturnType<typeof viewerProviders>['Providers']) {
    const changes: { finished: number; ended: boolean }[] = [];
    const summaries: StudyRunSummary[] = [];
    const hook = renderHook(
      () => {
        const followed = useRunProgress(runId);
        if (followed.run && summaries.at(-1) !== followed.run) summaries.push(followed.run);
        useOnFinishedChange(followed.run, (ended) => changes.push({ finished: finishedOf(followed.run!), ended }));
        return followed;
      },
      { wrapper: Providers },
    );
    open.push({ close: async () => hook.unmount() });
    return { hook, changes, summaries };
  }

  it('follows a run over its stream; the table would be fetched once per finished count and at the end, not per event', async () => {
    const { run, held, Providers } = await start();
    const { hook, changes, summaries } = follow(run.id, Providers);
    await waitFor(() => expect(hook.result.current.run?.running).toBeGreaterThan(0), UNTIL_DONE);
    expect(hook.result.current.source).toBe('stream');
    expect(finishedOf(hook.result.current.run!)).toBe(0);

    held.release();
    await waitFor(() => expect(hook.result.current.run?.status).toBe('succeeded'), UNTIL_DONE);
    expect(hook.result.current.source).toBe('stream');
    expect(finishedOf(hook.result.current.run!)).toBe(CASES);

    // monotone, and one call per distinct (finished, ended) state, the last one the end
    const finished = summaries.map(finishedOf);
    expect(finished).toEqual([...finished].sort((a, b) => a - b));
    expect(changes.map((c) => `${c.finished}:${c.ended}`)).toEqual([
      ...new Set(summaries.map((s) => `${finishedOf(s)}:${s.status !== 'running'}`)),
    ]);
    expect(changes.at(-1)).toEqual({ finished: CASES, ended: true });
    expect(changes.length).toBeLessThanOrEqual(CASES + 2);
  });

  it('falls back to polling runs.byId when the stream is refused (the user is at the stream cap)', async () => {
    const { sdk, run, held, Providers } = await start({ MAX_STREAMS_PER_USER: '1' });
    // another tab of the same user follows the run and holds the one stream allowed
    const other: string[] = [];
    const otherTab = sdk.studies.runs.onProgress.subscribe({ id: run.id }, { onData: (e) => other.push(e.data.status) });
    open.push({ close: async () => otherTab.unsubscribe() });
    await waitFor(() => expect(other).toContain('running'), UNTIL_DONE);

    const { hook, changes } = follow(run.id, Providers);
    await waitFor(() => expect(hook.result.current.source).toBe('polling'), UNTIL_DONE);
    await waitFor(() => expect(hook.result.current.run?.status).toBe('running'), UNTIL_DONE);
    held.release();
    await waitFor(() => expect(hook.result.current.run?.status).toBe('succeeded'), UNTIL_DONE);
    expect(changes.at(-1)).toEqual({ finished: CASES, ended: true });
  });
});
