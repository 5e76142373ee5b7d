import type { CpuPool } from './workers/pool.js';
import type { DatabaseHandle } from './db/connect.js';
import type { JobSystem } from './jobs/service.js';
import type { RefineSessions } from './refine/sessions.js';
import type { SessionCache } from './auth/session-cache.js';
import type { ModelRegistry } from './segmentation/models.js';
import type { VolumeSigner } from './volumes/signing.js';
import type { VolumeStore } from './volumes/store.js';

/** What the request handlers need once boot has finished. */
export interface Services {
  readonly database: DatabaseHandle;
  readonly store: VolumeStore;
  readonly signer: VolumeSigner;
  readonly models: ModelRegistry;
  /**
   * The job system: with the embedded database it starts after ready (#29), so a procedure that
   * needs the queue awaits it (a few hundred ms at most after a restart) instead of failing.
   */
  readonly jobs: Promise<JobSystem>;
  /** Worker threads for CPU-heavy work (uploads, the pipeline). */
  readonly cpu: CpuPool;
  /** Click refinement's editing sessions (the decoded cases kept between clicks). */
  readonly refine: RefineSessions;
  /** Who a token belongs to, without a round trip (absent: every request asks the database). */
  readonly sessions?: SessionCache;
}

export type ReadinessState = 'starting' | 'ready' | 'failed' | 'stopping';

/**
 * The server listens before the database is open so a proxy in front of a sleeping Space never
 * sees a refused connection; this object is how handlers learn whether boot has finished.
 */
export class Readiness {
  state: ReadinessState = 'starting';
  reason: string | undefined;
  #services: Services | undefined;

  get services(): Services | undefined {
    return this.state === 'ready' || this.state === 'stopping' ? this.#services : undefined;
  }

  markReady(services: Services): void {
    this.#services = services;
    this.state = 'ready';
  }

  markFailed(reason: string): void {
    this.state = 'failed';
    this.reason = reason;
  }

  markStopping(): void {
    this.state = 'stopping';
  }
}
