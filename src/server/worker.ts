import { runService } from './boot.js';
import { startWorker } from './start-worker.js';

// `node dist/src/server/worker.js` (also `strokeview worker`): segmentation workers alone own this process.
await runService(startWorker);
