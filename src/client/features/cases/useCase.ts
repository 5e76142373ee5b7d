import { skipToken } from '@tanstack/react-query';
import { trpc } from '../../trpc.js';

/**
 * A case as the viewer opens it: its detail, and — once it is known to exist and someone is signed
 * in — its jobs and saved mask versions; the latest finished result, so reopening a case shows it
 * without running again.
 */
export function useCase(id: string) {
  const detail = trpc.cases.byId.useQuery({ id });
  const me = trpc.auth.me.useQuery();
  const ownWork = me.data && detail.isSuccess ? { caseId: id } : skipToken;
  const jobs = trpc.jobs.list.useQuery(ownWork);
  const versions = trpc.masks.list.useQuery(ownWork);
  const code = detail.error?.data?.code;
  return {
    detail,
    signedIn: !!me.data,
    /** A malformed id is as missing as an unknown one (others' cases answer NOT_FOUND too). */
    notFound: code === 'NOT_FOUND' || code === 'BAD_REQUEST',
    jobs: jobs.data?.items ?? [],
    versions: versions.data?.items ?? [],
    latest: jobs.data?.items.find((j) => j.status === 'succeeded' && j.result) ?? null,
  };
}
