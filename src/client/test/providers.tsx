import { QueryClientProvider } from '@tanstack/react-query';
import { EventSource } from 'eventsource';
import type { ReactNode } from 'react';
import { ApiUrlContext } from '../api-url.js';
import { makeQueryClient, makeTrpcClient, trpc } from '../trpc.js';

/**
 * The viewer's own providers (its query client with the retry policy, its tRPC links) pointed at a
 * real server. Two things differ from a browser, both transport: requests carry a bearer token
 * (a test has no cookie session), and the stream uses the eventsource package, because happy-dom
 * has no EventSource.
 */
export function viewerProviders(apiUrl: string, token: string) {
  const authorization = `Bearer ${token}`;
  const queryClient = makeQueryClient();
  const trpcClient = makeTrpcClient(apiUrl, {
    headers: () => ({ authorization }),
    EventSource,
    eventSourceOptions: () => ({
      fetch: (input: string | URL | Request, init?: RequestInit) =>
        fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization } }),
    }),
  });
  function Providers({ children }: { children: ReactNode }) {
    return (
      <trpc.Provider client={trpcClient} queryClient={queryClient}>
        <QueryClientProvider client={queryClient}>
          <ApiUrlContext.Provider value={apiUrl}>{children}</ApiUrlContext.Provider>
        </QueryClientProvider>
      </trpc.Provider>
    );
  }
  return { Providers, queryClient };
}
