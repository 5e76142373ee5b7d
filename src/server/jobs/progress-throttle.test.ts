import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { createProgressThrottle } from './progress-throttle.js';

// The clock is vitest's fake one: each report happens at a scripted instant, so the writes are
// exact whatever the machine's speed.
beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});
afterEach(() => {
  vi.useRealTimers();
});

function script(intervalMs: number) {
  const writes: [number, number][] = [];
  const throttle = createProgressThrottle<number>({ intervalMs, write: (v) => writes.push([Date.now(), v]) });
  const at = (ms: number, value: number) => {
    vi.setSystemTime(ms);
    throttle.report(value);
  };
  const advanceTo = (ms: number) => vi.advanceTimersByTime(ms - Date.now());
  return { writes, throttle, at, advanceTo };
}

it('writes the first report at once, then at most one per interval, each slot with the latest value', () => {
  const { writes, at, advanceTo } = script(200);
  at(0, 1); // written now
  advanceTo(10);
  at(10, 2);
  advanceTo(50);
  at(50, 3); // 2 and 3 share the slot at 200: only 3 is written
  advanceTo(199);
  expect(writes).toEqual([[0, 1]]);
  advanceTo(200);
  expect(writes).toEqual([
    [0, 1],
    [200, 3],
  ]);
  advanceTo(450);
  at(450, 4); // 250 ms after the last write: at once
  advanceTo(460);
  at(460, 5);
  advanceTo(1000);
  expect(writes).toEqual([
    [0, 1],
    [200, 3],
    [450, 4],
    [650, 5],
  ]);
});

it('a burst of 1,000 reports over one second: a write every 200 ms, the last one carrying the final value', () => {
  const { writes, at, advanceTo } = script(200);
  for (let i = 0; i < 1000; i++) {
    advanceTo(i);
    at(i, i);
  }
  advanceTo(2000);
  expect(writes.map(([t]) => t)).toEqual([0, 200, 400, 600, 800, 1000]);
  expect(writes.at(-1)).toEqual([1000, 999]);
  for (let i = 1; i < writes.length; i++) expect(writes[i]![0] - writes[i - 1]![0]).toBeGreaterThanOrEqual(200);
});

it('cancel drops the trailing write', () => {
  const { writes, at, advanceTo, throttle } = script(200);
  at(0, 1);
  advanceTo(20);
  at(20, 2);
  throttle.cancel();
  advanceTo(1000);
  expect(writes).toEqual([[0, 1]]);
});
