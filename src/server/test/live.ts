import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';
import { createTrpcClient } from '../../sdk/client.js';

/** Serves the app on a free port over real HTTP (SSE needs a real socket). */
export async function serveApp(app: Hono): Promise<{ url: string; close(): Promise<void> }> {
  return new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) => {
      resolve({
        url: `http://127.0.0.1:${info.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections?.();
            server.close(() => done());
          }),
      });
    }) as Server;
    // Node closes an idle keep-alive socket after 5 s; a test client (undici) reusing it at that
    // moment gets ECONNRESET. On a busy machine the gap between two requests of one test can reach
    // 5 s, so idle sockets stay open for the test's length.
    server.keepAliveTimeout = 120_000;
  });
}

/** The SDK's typed tRPC client with a bearer token (no retries: a test wants the first answer). */
export function trpcClient(url: string, token: string) {
  return createTrpcClient({ url, token, retry: false });
}
