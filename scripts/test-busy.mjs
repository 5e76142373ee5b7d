#!/usr/bin/env node
// `npm run test:busy`: the whole suite while one busy loop per core keeps the CPU at 100 %.
// CI shares its 2 cores with a browser and other work; a test that passes only on an idle
// machine fails submissions at random. This proves the suite does not depend on the CPU's speed.
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';

const cores = availableParallelism();
const burners = Array.from({ length: cores }, () => spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
process.stdout.write(`test:busy: ${cores} busy loop(s) running (pids ${burners.map((b) => b.pid).join(', ')})\n`);
const stop = () => {
  for (const b of burners) b.kill('SIGKILL');
};
process.on('exit', stop);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

const vitest = spawn('npx', ['vitest', 'run', ...process.argv.slice(2)], { stdio: 'inherit' });
vitest.on('exit', (code, signal) => {
  stop();
  process.exit(code ?? (signal ? 1 : 0));
});
