import { threadId } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VolumeRole } from '../../shared/cases.js';
import { phantomVolumes } from '../cases/demo.js';
import { prepareCaseInPool } from '../cases/prepare.js';
import { DomainError } from '../errors.js';
import { segmentInPool } from '../segmentation/cpu.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry } from '../segmentation/models.js';
import type { Stage } from '../segmentation/pipeline.js';
import { sha256Hex } from '../volumes/store.js';
import { CpuPool, poolSize } from './pool.js';

let pool: CpuPool;
let registry: ModelRegistry;
beforeAll(async () => {
  pool = new CpuPool(2);
  registry = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
});
afterAll(async () => {
  await pool?.destroy();
  await registry?.close();
});

const volumesOf = (seed: number) =>
  Object.fromEntries(phantomVolumes(seed).map((v) => [v.role, new Uint8Array(v.stored)])) as Partial<Record<VolumeRole, Uint8Array>>;

describe('the CPU pool', () => {
  it('is sized from WORKER_CONCURRENCY and the cores (CPU_THREADS overrides)', () => {
    expect(poolSize({ CPU_THREADS: 0, WORKER_CONCURRENCY: 1 }, 8)).toBe(2);
    expect(poolSize({ CPU_THREADS: 0, WORKER_CONCURRENCY: 3 }, 8)).toBe(4);
    expect(poolSize({ CPU_THREADS: 0, WORKER_CONCURRENCY: 16 }, 8)).toBe(8);
    expect(poolSize({ CPU_THREADS: 0, WORKER_CONCURRENCY: 1 }, 1)).toBe(2);
    expect(poolSize({ CPU_THREADS: 5, WORKER_CONCURRENCY: 1 }, 2)).toBe(5);
  });

  it('runs its tasks on another thread than the event loop', async () => {
    const info = await pool.info();
    expect(threadId).toBe(0);
    expect(info.threadId).toBeGreaterThan(0);
  });

  it('prepares an upload off the event loop: the loop keeps turning while the files are decoded, gzipped and hashed', async () => {
    const files = volumesOf(3);
    let ticks = 0;
    let done = false;
    const spin = () => {
      if (done) return;
      ticks++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const prepared = await prepareCaseInPool(pool, files, { maxVoxels: 1 << 26 });
    done = true;
    // Synchronous work on this thread would hold every tick until it returned.
    expect(ticks).toBeGreaterThan(0);
    expect(prepared.map((p) => p.role)).toEqual(['dwi', 'adc', 'flair', 'mask']);
    for (const p of prepared) expect(p.sha256).toBe(sha256Hex(p.stored));
    expect(prepared.find((p) => p.role === 'adc')!.facts.adcUnit).toBe('1e-6');
  });

  it('an invalid upload is an unprocessable DomainError naming the file (field), as on the main thread', async () => {
    const files = { ...volumesOf(3), adc: new Uint8Array(500) };
    const err = await prepareCaseInPool(pool, files, { maxVoxels: 1 << 26 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DomainError);
    expect(err).toMatchObject({ kind: 'unprocessable', field: 'adc' });
    expect((err as Error).message).toMatch(/^ADC: /);
  });

  it('runs the whole pipeline in a thread, with progress and each stage checkpoint answered here', async () => {
    const stages: Stage[] = [];
    const percents: number[] = [];
    const result = await segmentInPool(pool, {
      volumes: volumesOf(101),
      models: [registry.models.get('adc-dwi-v2')!],
      provider: 'cpu',
      threads: 1,
      onProgress: (p) => percents.push(p.percent),
      checkpoint: async (stage) => {
        // This runs on the main thread while the pipeline waits for it.
        expect(threadId).toBe(0);
        stages.push(stage);
      },
    });
    expect(result.threadId).toBeGreaterThan(0);
    expect(stages).toEqual(['load', 'preprocess', 'infer', 'postprocess', 'encode']);
    expect(percents.at(-1)).toBe(95);
    expect(result.metrics.dice).toBeGreaterThan(0.9);
    expect(result.maskNifti.length).toBeGreaterThan(100);
  });

  it('a job held at a stage in the thread is cancelled by its signal', async () => {
    const controller = new AbortController();
    let release: (() => void) | undefined;
    const run = segmentInPool(pool, {
      volumes: volumesOf(101),
      models: [registry.models.get('adc-dwi-v2')!],
      provider: 'cpu',
      threads: 1,
      signal: controller.signal,
      checkpoint: (stage) => (stage === 'infer' ? new Promise<void>((r) => (release = r)) : Promise.resolve()),
    });
    await new Promise<void>((r) => {
      const wait = () => (release ? r() : setImmediate(wait));
      wait();
    });
    controller.abort();
    release!();
    await expect(run).rejects.toMatchObject({ kind: 'cancelled' });
  });
});
