// The pool's thread when the server runs from its TypeScript sources (tests, tsx): tsx's loader
// is registered for the whole thread first, so the domain task modules a task names by URL
// (workers/task.ts) load as TypeScript too — `--import tsx` in execArgv covers only the thread's
// entry module, not the modules it imports by URL later (checked with tsx 4.23 on Node 20).
import { register } from 'tsx/esm/api';

register();
const thread = await import('./thread.ts');
export default thread.default;
