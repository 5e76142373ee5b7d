import { expect, it } from 'vitest';
import { parseEnv } from '../env.js';
import { createLogger } from '../logger.js';
import { describeEachDatabase } from '../test/databases.js';
import { SEGMENTATION_QUEUE, startQueue, stopQueue } from './queue.js';

describeEachDatabase('the job queue', (current) => {
  it('a JOB_LEASE_S changed after the queue was created is said, not silently ignored (#16 item 4)', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = createLogger({ level: 'info', destination: { write: (l: string) => void lines.push(JSON.parse(l)) } });
    const first = await startQueue({ database: current().handle, env: parseEnv({ JOB_LEASE_S: '30' }), log });
    expect((await first.getQueue(SEGMENTATION_QUEUE))?.heartbeatSeconds).toBe(30);
    await first.stop({ graceful: false, close: current().kind === 'postgres', timeout: 1000 });
    expect(lines.filter((l) => l.level === 'warn')).toEqual([]);

    const second = await startQueue({ database: current().handle, env: parseEnv({ JOB_LEASE_S: '45' }), log });
    try {
      const warning = lines.find((l) => l.level === 'warn' && l.queue === SEGMENTATION_QUEUE);
      expect(warning).toMatchObject({ configured: 45, inForce: 30 });
      expect(String(warning?.msg)).toMatch(/JOB_LEASE_S is 45 but the queue was created with a 30 s lease, which stays in force/);
    } finally {
      await second.stop({ graceful: false, close: current().kind === 'postgres', timeout: 1000 });
    }
  });

  it("a queue error is logged as an error while it runs, and as the shutdown's once stopQueue began (a poll cut short)", async () => {
    const lines: Record<string, unknown>[] = [];
    const log = createLogger({ level: 'info', destination: { write: (l: string) => void lines.push(JSON.parse(l)) } });
    const boss = await startQueue({ database: current().handle, env: parseEnv({}), log });
    boss.emit('error', new Error('the database is unavailable'));
    expect(lines.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual(['job queue error']);
    await stopQueue(boss, current().kind === 'postgres');
    // what a worker's poll still in flight says once the database closes under it
    boss.emit('error', new Error("the embedded database's thread exited (code 1)"));
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(1);
    expect(lines.at(-1)).toMatchObject({
      level: 'info',
      msg: 'job queue: a poll cut short by the shutdown',
      err: expect.stringMatching(/thread exited/),
    });
  });
});
