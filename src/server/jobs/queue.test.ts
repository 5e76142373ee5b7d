import { expect, it } from 'vitest';
import { parseEnv } from '../env.js';
import { createLogger } from '../logger.js';
import { describeEachDatabase } from '../test/databases.js';
import { SEGMENTATION_QUEUE, startQueue } from './queue.js';

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
});
