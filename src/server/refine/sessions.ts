import type { PreparedCase } from './prepare.js';

// The editing sessions' cache: a case's decoded, preprocessed volumes kept between clicks of one
// person's editing session (so the second click does not decode the case again), bounded in bytes
// and per user, freed when idle, on save and when the editor leaves. The arrays are
// SharedArrayBuffers: every pool thread reads them without a copy. Per process: a click that
// lands on another replica prepares the case there once.

export interface RefineSessionLimits {
  /** All sessions together. */
  maxBytes: number;
  /** Sessions one user holds at once (the oldest goes first). */
  maxPerUser: number;
  /** A session not clicked for this long is dropped. */
  idleMs: number;
  now?: () => number;
}

interface Entry {
  userId: string;
  caseId: string;
  prepared: Promise<PreparedCase>;
  bytes: number;
  usedAt: number;
}

export class RefineSessions {
  private readonly entries = new Map<string, Entry>();
  private readonly clicks = new Map<string, { added: number; removed: number }>();
  private readonly now: () => number;
  private readonly running = new Set<string>();

  constructor(private readonly limits: RefineSessionLimits) {
    this.now = limits.now ?? Date.now;
  }

  private static key(userId: string, caseId: string, modelId: string) {
    return `${userId}|${caseId}|${modelId}`;
  }

  /** The session's prepared case, made by `prepare` on first use; `cached` says whether it was there. */
  async get(
    who: { userId: string; caseId: string; modelId: string },
    prepare: () => Promise<PreparedCase>,
  ): Promise<{ prepared: PreparedCase; cached: boolean }> {
    this.sweep();
    const key = RefineSessions.key(who.userId, who.caseId, who.modelId);
    const found = this.entries.get(key);
    if (found) {
      found.usedAt = this.now();
      // re-inserted: Map order is least recently used first
      this.entries.delete(key);
      this.entries.set(key, found);
      return { prepared: await found.prepared, cached: true };
    }
    const entry: Entry = { userId: who.userId, caseId: who.caseId, prepared: prepare(), bytes: 0, usedAt: this.now() };
    this.entries.set(key, entry);
    try {
      const prepared = await entry.prepared;
      entry.bytes = prepared.bytes;
    } catch (err) {
      if (this.entries.get(key) === entry) this.entries.delete(key);
      throw err;
    }
    this.enforce(key);
    return { prepared: await entry.prepared, cached: false };
  }

  /** Marks a refinement of this user's as running; false when one already is. */
  claim(userId: string): boolean {
    if (this.running.has(userId)) return false;
    this.running.add(userId);
    return true;
  }

  release(userId: string): void {
    this.running.delete(userId);
  }

  /** Counts a click the server refined, for the provenance of the next save. */
  countClick(userId: string, caseId: string, positive: boolean): void {
    const key = `${userId}|${caseId}`;
    const c = this.clicks.get(key) ?? { added: 0, removed: 0 };
    if (positive) c.added++;
    else c.removed++;
    this.clicks.set(key, c);
  }

  /** On save: the clicks since the last save, and the session freed. */
  take(userId: string, caseId: string): { added: number; removed: number } {
    const key = `${userId}|${caseId}`;
    const c = this.clicks.get(key) ?? { added: 0, removed: 0 };
    this.clicks.delete(key);
    this.end(userId, caseId);
    return c;
  }

  /** The editor left: its sessions for this case are freed. */
  end(userId: string, caseId: string): void {
    for (const [key, e] of this.entries) if (e.userId === userId && e.caseId === caseId) this.entries.delete(key);
  }

  /** Drops sessions idle past the limit. */
  sweep(): void {
    const cutoff = this.now() - this.limits.idleMs;
    for (const [key, e] of this.entries) if (e.usedAt < cutoff) this.entries.delete(key);
  }

  stats(): { sessions: number; bytes: number } {
    let bytes = 0;
    for (const e of this.entries.values()) bytes += e.bytes;
    return { sessions: this.entries.size, bytes };
  }

  private enforce(keep: string): void {
    const entry = this.entries.get(keep);
    if (!entry) return;
    const mine = [...this.entries].filter(([, e]) => e.userId === entry.userId);
    for (const [key] of mine.slice(0, Math.max(0, mine.length - this.limits.maxPerUser))) this.entries.delete(key);
    for (const [key] of this.entries) {
      if (this.stats().bytes <= this.limits.maxBytes || key === keep) continue;
      this.entries.delete(key);
    }
  }
}

/** The defaults a server runs with: ~1 GiB of sessions, two per user, ten idle minutes. */
export const DEFAULT_REFINE_LIMITS: RefineSessionLimits = { maxBytes: 1024 * 1024 * 1024, maxPerUser: 2, idleMs: 10 * 60_000 };
