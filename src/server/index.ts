import { runService } from './boot.js';
import { startServer } from './start-server.js';

// `node dist/src/server/index.js` (npm start, the Dockerfile's CMD): the server owns this process.
await runService(startServer);
