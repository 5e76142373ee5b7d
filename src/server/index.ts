import { openEmbeddedEarly } from './open-early.js';

// `node dist/src/server/index.js` (npm start, the Dockerfile's CMD): the server owns this process.
// The embedded database starts opening on its own thread before the server's modules load (#29):
// only open-early.ts and what it needs are imported statically here.
const early = openEmbeddedEarly();
const [{ runService }, { startServerEarly }] = await Promise.all([import('./boot.js'), import('./start-early.js')]);
await runService((env) => startServerEarly(env, early));
