import { QueryCache, QueryClient, MutationCache } from '@tanstack/react-query';
import { createTRPCReact } from '@trpc/react-query';
import type { AppRouter } from '../server/routers/_app.js';
import { type LinkOptions, buildLinks } from '../shared/links.js';
import { backoffElapsedMs, failureFacts, isRetryable, retryDelayMs, shouldRetry } from '../shared/retry.js';
import { wake } from './wake.js';

export const trpc = createTRPCReact<AppRouter>();

/**
 * Where the API is: the page's own origin, unless VITE_API_URL (build time) or /config.json's
 * `apiUrl` (runtime: a frontend deployed apart from its API) says otherwise.
 */
export async function resolveApiUrl(): Promise<string> {
  const built = import.meta.env.VITE_API_URL as string | undefined;
  if (built) return built.replace(/\/$/, '');
  // Served by the API itself: it says so in index.html (no extra request before the first query).
  const meta = document.querySelector<HTMLMetaElement>('meta[name="strokeview-api"]');
  if (meta) return meta.content ? meta.content.replace(/\/$/, '') : location.origin;
  try {
    const res = await fetch('/config.json', { cache: 'no-store' });
    if (res.ok) {
      const cfg = (await res.json()) as { apiUrl?: string | null };
      if (cfg.apiUrl) return cfg.apiUrl.replace(/\/$/, '');
    }
  } catch {
    // no runtime config: same origin
  }
  return location.origin;
}

/** React Query's retry decision under the shared policy; updates the "waking up" banner. */
function retryFor(kind: 'query' | 'mutation', path?: string) {
  return (failureCount: number, error: unknown): boolean => {
    const facts = failureFacts(error);
    const again = shouldRetry({ facts, elapsedMs: backoffElapsedMs(failureCount + 1), kind, ...(path ? { path } : {}) });
    if (again) wake.retrying();
    else if (isRetryable(facts)) wake.gaveUp();
    return again;
  };
}

export function makeQueryClient(): QueryClient {
  return new QueryClient({
    queryCache: new QueryCache({ onSuccess: () => wake.succeeded() }),
    mutationCache: new MutationCache({ onSuccess: () => wake.succeeded() }),
    defaultOptions: {
      queries: {
        refetchOnWindowFocus: false,
        staleTime: 10_000,
        retry: retryFor('query'),
        retryDelay: (attempt, error) => retryDelayMs(attempt + 1, failureFacts(error).retryAfterS),
      },
      mutations: { retry: false },
    },
  });
}

/** The retry options job creation uses: the only mutation that retries (it has an idempotency key). */
export function jobCreateRetry() {
  return {
    retry: retryFor('mutation', 'jobs.create'),
    retryDelay: (attempt: number, error: unknown) => retryDelayMs(attempt + 1, failureFacts(error).retryAfterS),
  };
}

/** What makeTrpcClient may be given instead of the browser's own fetch and EventSource (a Node test has no EventSource and no cookies). */
export type Transport = Pick<LinkOptions<AppRouter>, 'fetch' | 'headers' | 'EventSource' | 'eventSourceOptions'>;

export function makeTrpcClient(apiUrl: string, transport: Partial<Transport> = {}) {
  const crossOrigin = new URL(apiUrl).origin !== location.origin;
  const credentialed: typeof fetch = (input, init) => fetch(input, { ...init, credentials: crossOrigin ? 'include' : 'same-origin' });
  return trpc.createClient({
    links: buildLinks<AppRouter>({
      url: apiUrl,
      fetch: credentialed,
      eventSourceOptions: () => ({ withCredentials: crossOrigin }),
      ...transport,
      // Queries and mutations retry through React Query (makeQueryClient); the stream reconnects
      // here, and httpSubscriptionLink resumes from the last event id it saw.
      retry: {
        scope: 'subscriptions',
        retry: (opts) => {
          const facts = failureFacts(opts.error);
          const again = opts.attempts < 40 && shouldRetry({ facts, elapsedMs: 0, kind: 'subscription' });
          if (again) wake.retrying();
          return again;
        },
        retryDelayMs: (attempt) => retryDelayMs(attempt + 1),
      },
    }),
  });
}
