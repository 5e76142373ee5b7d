// The embedded database's thread when the server runs from its TypeScript sources (tests, tsx):
// tsx's loader is registered for the thread first, so its TypeScript entry loads (as the CPU
// pool's thread-from-source.mjs does).
import { register } from 'tsx/esm/api';

register();
await import('./pglite-thread-entry.ts');
