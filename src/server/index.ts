import { runService } from './boot.js';
import { startServerEarly } from './start-early.js';

// `node dist/src/server/index.js` (npm start, the Dockerfile's CMD): the server owns this process.
// start-early.ts opens the embedded database while the server's modules load (#29).
await runService(startServerEarly);
