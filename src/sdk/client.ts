import { type TRPCClient, type TRPCLink, createTRPCClient } from '@trpc/client';
import { observable } from '@trpc/server/observable';
import { EventSource } from 'eventsource';
import { type LinkOptions, buildLinks } from '../shared/links.js';
import { backoffElapsedMs, failureFacts, retryDelayMs, shouldRetry } from '../shared/retry.js';
import { StrokeviewError } from './errors.js';
import type { AppRouter } from './router.js';

export interface ClientOptions {
  /** Where the server is, e.g. `http://localhost:7860` or `https://<space>.hf.space`. */
  url: string;
  /**
   * An API token (`strokeview tokens create`, or `auth.tokens.create` from a browser session); sent
   * as a bearer token. A refused one fails every call with `StrokeviewError.tokenRefused`.
   */
  token?: string;
  /** A fetch to use instead of the global one (proxies, tests, custom agents). */
  fetch?: typeof fetch;
  /**
   * The cold-start retry policy (src/shared/retry.ts, the viewer's own): 502/503/504 and network
   * failures are retried with backoff (1 s doubling, at most 30 s apart, honouring Retry-After)
   * until `giveUpMs` (default 180 s) has passed; 4xx never. `false` turns retries off.
   */
  retry?: false | { giveUpMs?: number };
}

/** Maps every error leaving the links to one class: StrokeviewError. */
function errorLink(): TRPCLink<AppRouter> {
  return () =>
    ({ next, op }) =>
      observable((observer) => {
        const sub = next(op).subscribe({
          next: (value) => observer.next(value),
          error: (err) => observer.error(StrokeviewError.wrap(err)),
          complete: () => observer.complete(),
        });
        return () => sub.unsubscribe();
      });
}

/** The shared retry policy in front of every call: the SDK has no React Query to retry for it. */
function retryPolicy(giveUpMs: number | undefined): NonNullable<LinkOptions<AppRouter>['retry']> {
  // retryLink asks `retry` and then, synchronously, `retryDelayMs`: the Retry-After read in the
  // first is used by the second.
  let retryAfterS: number | null | undefined;
  return {
    scope: 'every-call',
    retry: ({ op, error, attempts }) => {
      const facts = failureFacts(error);
      retryAfterS = facts.retryAfterS;
      return shouldRetry({
        facts,
        elapsedMs: backoffElapsedMs(attempts),
        kind: op.type,
        path: op.path,
        ...(giveUpMs !== undefined ? { giveUpMs } : {}),
      });
    },
    retryDelayMs: (attempt) => retryDelayMs(attempt, retryAfterS),
  };
}

/** The typed tRPC client: every router with its end-to-end types, files as multipart, progress over SSE. */
export function createTrpcClient(opts: ClientOptions): TrpcClient {
  const baseFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const headers = (): Record<string, string> => (opts.token ? { authorization: `Bearer ${opts.token}` } : {});
  return createTRPCClient<AppRouter>({
    links: [
      errorLink(),
      ...buildLinks<AppRouter>({
        url: opts.url.replace(/\/+$/, ''),
        fetch: baseFetch,
        headers,
        // The eventsource package everywhere (Node 20 has no EventSource, and a browser's cannot
        // send a bearer token); it reconnects with Last-Event-ID, so progress resumes without repeats.
        EventSource,
        eventSourceOptions: () => ({
          fetch: (input: string | URL | Request, init?: RequestInit) =>
            baseFetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), ...headers() } }),
        }),
        ...(opts.retry === false ? {} : { retry: retryPolicy(opts.retry?.giveUpMs) }),
      }),
    ],
  });
}

export type TrpcClient = TRPCClient<AppRouter>;
