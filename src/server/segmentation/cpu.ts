import { threadId } from 'node:worker_threads';
import type { VolumeRole } from '../../shared/cases.js';
import type { ModelManifest } from '../../shared/models.js';
import { type CpuPool, asBuffer } from '../workers/pool.js';
import { type TaskIo, cpuTask } from '../workers/task.js';
import { type LoadedModel, createSession } from './models.js';
import { type PipelineResult, type Progress, type Stage, runPipeline } from './pipeline.js';

// The segmentation pipeline as a CPU task: it runs in a pool thread with its own ONNX sessions;
// holds, cancel checks and progress writes stay on the main thread (they touch the database).

export interface SegmentInput {
  volumes: Partial<Record<VolumeRole, Uint8Array>>;
  models: { manifest: ModelManifest; dir: string }[];
  provider: 'cpu' | 'cuda';
  threads: number;
}

/** What a segmentation gives back: the encoded mask files and the numbers (the raw voxel masks stay in the thread). */
export type SegmentResult = Omit<PipelineResult, 'mask' | 'perModel'> & {
  perModel: { modelId: string; maskNifti: Buffer }[];
  timings: Partial<Record<Stage, number>>;
  threadId: number;
};

/** Sessions are created once per thread and model file (segmentation and interactive models alike). */
const sessions = new Map<string, Promise<LoadedModel['session']>>();
export function sessionFor(dir: string, provider: 'cpu' | 'cuda', threads: number) {
  const key = `${dir}|${provider}|${threads}`;
  let s = sessions.get(key);
  if (!s) {
    s = createSession(`${dir}/model.onnx`, provider, threads).catch(async (err) => {
      if (provider === 'cuda') return createSession(`${dir}/model.onnx`, 'cpu', threads);
      throw err;
    });
    sessions.set(key, s);
  }
  return s;
}

/** The task (in a pool thread). */
export async function segment(input: SegmentInput, io: TaskIo<Progress, Stage>): Promise<SegmentResult> {
  const models: LoadedModel[] = [];
  for (const m of input.models)
    models.push({ manifest: m.manifest, dir: m.dir, session: await sessionFor(m.dir, input.provider, input.threads) });
  const timings: Partial<Record<Stage, number>> = {};
  const {
    mask: _mask,
    perModel,
    ...result
  } = await runPipeline({
    read: async (role) => input.volumes[role],
    models,
    signal: io.signal,
    timings,
    onProgress: io.progress,
    checkpoint: io.checkpoint,
  });
  return { ...result, perModel: perModel.map((m) => ({ modelId: m.modelId, maskNifti: m.maskNifti })), timings, threadId };
}
const segmentTask = cpuTask<SegmentInput, SegmentResult, Progress, Stage>(import.meta.url, 'segment');

export interface SegmentInPoolOptions extends Omit<SegmentInput, 'models'> {
  models: LoadedModel[];
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  checkpoint?: (stage: Stage) => Promise<void>;
}

/** Runs the pipeline in the CPU pool; the volumes move to the thread without a copy (read for this job only). */
export async function segmentInPool(cpu: CpuPool, opts: SegmentInPoolOptions): Promise<SegmentResult> {
  const { volumes, provider, threads, signal, onProgress, checkpoint } = opts;
  const out = await cpu.run(
    segmentTask,
    { volumes, provider, threads, models: opts.models.map((m) => ({ manifest: m.manifest, dir: m.dir })) },
    {
      transfer: Object.values(volumes),
      ...(signal ? { signal } : {}),
      ...(onProgress ? { onProgress } : {}),
      ...(checkpoint ? { checkpoint } : {}),
    },
  );
  return { ...out, maskNifti: asBuffer(out.maskNifti), perModel: out.perModel.map((m) => ({ ...m, maskNifti: asBuffer(m.maskNifti) })) };
}
