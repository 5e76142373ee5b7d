import { startLiveServer } from '../src/server/test/live-server.js';
import { sendChunked } from '../src/server/test/multipart.js';
import { rssPeak } from './util.js';

// #23 F1: anonymous callers throwing large chunked bodies at every large-body route. Each route
// must refuse before it reads (401 after authentication, which comes first), so the server's
// memory stays where it was: its peak RSS during 8 concurrent 400 MiB bodies per route is compared
// with its RSS at rest (the baseline, same run). BENCH_BODY_MB / BENCH_BODIES set the size and
// the concurrency (default 400 MiB × 8).

const MiB = 1048576;
const sizeMb = Number(process.env.BENCH_BODY_MB ?? 400);
const concurrent = Number(process.env.BENCH_BODIES ?? 8);
const ROUTES = ['/trpc/cases.upload', '/trpc/masks.save', '/api/cases', '/api/masks'];

/** One anonymous chunked POST, sent lazily until the server answers: status and MiB sent. */
const throwBody = async (url: string) => {
  const r = await sendChunked(url, { 'content-type': 'multipart/form-data; boundary=x' }, sizeMb * MiB);
  return { status: r.status, sentMb: r.sent / MiB };
};

console.log(`\nLarge anonymous bodies — ${concurrent} × ${sizeMb} MiB chunked per route, ${ROUTES.length} routes`);
const server = await startLiveServer({ demoCases: 0, env: { LOG_LEVEL: 'warn' } });
try {
  const mem = rssPeak(server.child.pid!);
  for (const route of ROUTES) {
    const results = await Promise.all(Array.from({ length: concurrent }, () => throwBody(`${server.url}${route}`)));
    const statuses = [...new Set(results.map((r) => r.status))].join(', ');
    const sent = Math.max(...results.map((r) => r.sentMb));
    console.log(`  ${route.padEnd(20)} answered ${statuses}; at most ${sent} MiB of ${sizeMb} sent before the answer`);
  }
  const { startMb, peakMb } = mem();
  const growth = peakMb - startMb;
  console.log(
    `  server RSS: at rest ${startMb.toFixed(0)} MB (baseline), peak ${peakMb.toFixed(0)} MB: growth ${growth.toFixed(1)} MB, ${(peakMb / startMb).toFixed(2)}× — goal ≤ 64 MB: ${growth <= 64 ? 'met' : 'MISSED'}`,
  );
} finally {
  await server.stop();
}
