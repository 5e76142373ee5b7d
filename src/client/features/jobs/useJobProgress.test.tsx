// @vitest-environment happy-dom
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { renderHook, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { trpcClient } from '../../../server/test/live.js';
import { startLiveServer } from '../../../server/test/live-server.js';
import { freePort } from '../../../server/test/process.js';
import { viewerProviders } from '../../test/providers.js';
import { mintToken } from '../../test/token.js';
import { useJobProgress } from './useJobProgress.js';

// Long enough for a real segmentation on a busy machine: a deadline, not a speed target.
const UNTIL_DONE = { timeout: 90_000, interval: 50 };

// The built server as its own process (the hooks run under happy-dom, where the server's worker
// threads cannot start): what the viewer talks to, with jobs held at inference until released.
describe('useJobProgress against a real server', () => {
  const open: { close(): Promise<unknown> }[] = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });

  async function start(env: Record<string, string> = {}) {
    const holdFile = path.join(tmpdir(), `sv-hold-${process.pid}-${Date.now()}`);
    // The page is served by the API itself (the default deployment): same origin, so happy-dom's
    // fetch, which applies CORS as a browser does, lets the viewer's requests through.
    const port = await freePort();
    (window as unknown as { happyDOM: { setURL(url: string): void } }).happyDOM.setURL(`http://127.0.0.1:${port}/cases`);
    const server = await startLiveServer({
      env: { PORT: String(port), ORT_THREADS: '1', STROKEVIEW_TEST_HOLD: `infer:${holdFile}`, ...env },
    });
    open.push({ close: () => server.stop() });
    const token = mintToken(server.url, 'viewer@x.org');
    const sdk = trpcClient(server.url, token);
    const [demo] = (await sdk.cases.list.query()).items;
    const job = await sdk.jobs.create.mutate({ caseId: demo!.id });
    const { Providers } = viewerProviders(server.url, token);
    const held = { release: () => writeFileSync(holdFile, '') };
    return { sdk, caseId: demo!.id, job, held, Providers };
  }

  it('follows a job over its stream: running while the worker holds it, then succeeded with its metrics', async () => {
    const { job, held, Providers } = await start();
    const { result, unmount } = renderHook(() => useJobProgress(job.id), { wrapper: Providers });
    open.push({ close: async () => unmount() });

    await waitFor(() => expect(result.current.progress?.status).toBe('running'), UNTIL_DONE);
    expect(result.current).toMatchObject({ source: 'stream', ended: false, job: null });

    held.release();
    await waitFor(() => expect(result.current.ended).toBe(true), UNTIL_DONE);
    expect(result.current.progress).toMatchObject({ status: 'succeeded', progress: 100, error: null });
    expect(result.current.source).toBe('stream');
    await waitFor(() => expect(result.current.job).not.toBeNull(), UNTIL_DONE);
    expect(result.current.job!.id).toBe(job.id);
    expect(result.current.job!.result!.metrics.dice).toBeGreaterThan(0.9);
    expect(result.current.job!.result!.mask.url).toMatch(/^http/);
  });

  it('falls back to polling when the stream is refused (the user is at the stream cap): progress and the result still arrive', async () => {
    const { sdk, job, held, Providers } = await start({ MAX_STREAMS_PER_USER: '1' });
    // Another tab of the same user follows the job and holds the one stream allowed.
    const other: string[] = [];
    const otherTab = sdk.jobs.onProgress.subscribe({ id: job.id }, { onData: (e) => other.push(e.data.status) });
    open.push({ close: async () => otherTab.unsubscribe() });
    await waitFor(() => expect(other).toContain('running'), UNTIL_DONE);

    const { result, unmount } = renderHook(() => useJobProgress(job.id), { wrapper: Providers });
    open.push({ close: async () => unmount() });
    await waitFor(() => expect(result.current.source).toBe('polling'), UNTIL_DONE);
    await waitFor(() => expect(result.current.progress?.status).toBe('running'), UNTIL_DONE);
    expect(result.current).toMatchObject({ ended: false, job: null });

    held.release();
    await waitFor(() => expect(result.current.ended).toBe(true), UNTIL_DONE);
    expect(result.current.progress).toMatchObject({ status: 'succeeded', progress: 100 });
    expect(result.current.source).toBe('polling');
    expect(result.current.job!.result!.metrics.dice).toBeGreaterThan(0.9);
  });

  it('follows nothing without a job, and shows a new job only its own state', async () => {
    const { sdk, caseId, job, held, Providers } = await start();
    const { result, rerender, unmount } = renderHook(({ id }: { id: string | null }) => useJobProgress(id), {
      wrapper: Providers,
      initialProps: { id: null as string | null },
    });
    open.push({ close: async () => unmount() });
    expect(result.current).toEqual({ progress: null, source: 'stream', ended: false, job: null });

    rerender({ id: job.id });
    await waitFor(() => expect(result.current.progress?.status).toBe('running'), UNTIL_DONE);
    held.release();
    await waitFor(() => expect(result.current.job?.status).toBe('succeeded'), UNTIL_DONE);

    const next = await sdk.jobs.create.mutate({ caseId });
    rerender({ id: next.id });
    // Not the previous job's "succeeded" for even one render.
    expect(result.current).toMatchObject({ ended: false, job: null });
    await waitFor(() => expect(result.current.job?.id).toBe(next.id), UNTIL_DONE);
    expect(result.current.progress?.status).toBe('succeeded');
  });
});
