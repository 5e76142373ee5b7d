import { describe, expect, it } from 'vitest';
import type { PreparedCase } from './prepare.js';
import { RefineSessions } from './sessions.js';

// The editing sessions' cache, with an injected clock: bounded per user and in bytes, idle
// sessions dropped, freed on save and leave, a failed prepare not kept.

const prepared = (bytes: number) => ({ bytes }) as PreparedCase;

describe('RefineSessions', () => {
  it('prepares once per user, case and model; later clicks are cached', async () => {
    const s = new RefineSessions({ maxBytes: 1000, maxPerUser: 2, idleMs: 60_000 });
    let made = 0;
    const make = async () => (made++, prepared(10));
    expect((await s.get({ userId: 'u', caseId: 'c', modelId: 'm' }, make)).cached).toBe(false);
    expect((await s.get({ userId: 'u', caseId: 'c', modelId: 'm' }, make)).cached).toBe(true);
    expect((await s.get({ userId: 'v', caseId: 'c', modelId: 'm' }, make)).cached).toBe(false);
    expect(made).toBe(2);
  });

  it('keeps at most maxPerUser sessions per user and maxBytes in all, the least recently used going first', async () => {
    const s = new RefineSessions({ maxBytes: 250, maxPerUser: 2, idleMs: 60_000 });
    for (const c of ['a', 'b', 'c']) await s.get({ userId: 'u', caseId: c, modelId: 'm' }, async () => prepared(100));
    expect(s.stats()).toEqual({ sessions: 2, bytes: 200 });
    expect((await s.get({ userId: 'u', caseId: 'a', modelId: 'm' }, async () => prepared(100))).cached).toBe(false);
    await s.get({ userId: 'v', caseId: 'a', modelId: 'm' }, async () => prepared(100));
    expect(s.stats().bytes).toBeLessThanOrEqual(250);
  });

  it('drops sessions idle past idleMs, and frees them on save (take) and leave (end); counts clicks until the save', async () => {
    let now = 0;
    const s = new RefineSessions({ maxBytes: 1000, maxPerUser: 2, idleMs: 1000, now: () => now });
    await s.get({ userId: 'u', caseId: 'c', modelId: 'm' }, async () => prepared(10));
    now = 999;
    expect((await s.get({ userId: 'u', caseId: 'c', modelId: 'm' }, async () => prepared(10))).cached).toBe(true);
    now = 2500;
    expect((await s.get({ userId: 'u', caseId: 'c', modelId: 'm' }, async () => prepared(10))).cached).toBe(false);
    s.countClick('u', 'c', true);
    s.countClick('u', 'c', true);
    s.countClick('u', 'c', false);
    expect(s.take('u', 'c')).toEqual({ added: 2, removed: 1 });
    expect(s.stats().sessions).toBe(0);
    expect(s.take('u', 'c')).toEqual({ added: 0, removed: 0 });
    await s.get({ userId: 'u', caseId: 'c', modelId: 'm' }, async () => prepared(10));
    s.end('u', 'c');
    expect(s.stats().sessions).toBe(0);
  });

  it('does not keep a prepare that failed; one refinement in flight per user', async () => {
    const s = new RefineSessions({ maxBytes: 1000, maxPerUser: 2, idleMs: 1000 });
    await expect(
      s.get({ userId: 'u', caseId: 'c', modelId: 'm' }, async () => {
        throw new Error('bad case');
      }),
    ).rejects.toThrow('bad case');
    expect(s.stats().sessions).toBe(0);
    expect(s.claim('u')).toBe(true);
    expect(s.claim('u')).toBe(false);
    expect(s.claim('v')).toBe(true);
    s.release('u');
    expect(s.claim('u')).toBe(true);
  });
});
