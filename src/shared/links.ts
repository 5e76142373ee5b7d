import { type TRPCLink, httpBatchLink, httpLink, httpSubscriptionLink, isFormData, retryLink, splitLink } from '@trpc/client';
import type { AnyRouter } from '@trpc/server';
import { fetchWithStatus } from './retry.js';

type SubscriptionOptions = Parameters<typeof httpSubscriptionLink>[0];
type RetryOptions<TRouter extends AnyRouter> = Parameters<typeof retryLink<TRouter>>[0];

export interface LinkOptions<TRouter extends AnyRouter> {
  /** The server's base URL (no trailing slash); procedures are under `${url}/trpc`. */
  url: string;
  /** The fetch queries and mutations go through (credentials, a proxy agent, a test's transport). */
  fetch: typeof fetch;
  /** Headers for queries and mutations (a bearer token); the stream gets its own through `eventSourceOptions`. */
  headers?: () => Record<string, string>;
  /** An EventSource class where the global one will not do (Node has none; a browser's cannot send a bearer token). */
  EventSource?: SubscriptionOptions['EventSource'];
  eventSourceOptions?: SubscriptionOptions['eventSourceOptions'];
  /**
   * The retry decision, and where it applies: every call (the SDK, which has nothing else to
   * retry for it) or only the progress stream (the viewer, whose queries React Query retries).
   */
  retry?: RetryOptions<TRouter> & { scope: 'every-call' | 'subscriptions' };
}

/**
 * The link chain the viewer and the SDK share: subscriptions over SSE (httpSubscriptionLink
 * resumes from the last event id it saw, so a retried stream repeats nothing); files as
 * multipart form data through httpLink, because batching cannot carry them; everything else
 * batched. Queries and mutations go through fetchWithStatus, so a proxy's HTML 503 page still
 * reaches the retry policy with its status.
 */
export function buildLinks<TRouter extends AnyRouter>(opts: LinkOptions<TRouter>): TRPCLink<TRouter>[] {
  const url = `${opts.url}/trpc`;
  const fetch = fetchWithStatus(opts.fetch);
  const headers = opts.headers ?? (() => ({}));
  const retry = opts.retry ? [retryLink<TRouter>({ retry: opts.retry.retry, retryDelayMs: opts.retry.retryDelayMs })] : [];
  const stream = httpSubscriptionLink({
    url,
    ...(opts.EventSource ? { EventSource: opts.EventSource } : {}),
    ...(opts.eventSourceOptions ? { eventSourceOptions: opts.eventSourceOptions } : {}),
  });
  // Router-agnostic at run time (no transformer: the API speaks plain JSON), so typed once here.
  const split: TRPCLink<TRouter> = splitLink<AnyRouter>({
    condition: (op) => op.type === 'subscription',
    true: opts.retry?.scope === 'subscriptions' ? [...retry, stream] : stream,
    false: splitLink({
      condition: (op) => isFormData(op.input),
      true: httpLink<AnyRouter>({ url, headers, fetch }),
      false: httpBatchLink<AnyRouter>({ url, headers, fetch, maxItems: 10 }),
    }),
  });
  return opts.retry?.scope === 'every-call' ? [...retry, split] : [split];
}
