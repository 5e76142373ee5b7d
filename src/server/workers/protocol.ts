import type { Progress, Stage } from '../segmentation/pipeline.js';

/** Messages on a segmentation task's port. */
export type FromThread =
  | { type: 'progress'; progress: Progress }
  /** The pipeline entered a stage and waits for `continue` (or `abort`). */
  | { type: 'checkpoint'; id: number; stage: Stage };

export type ToThread = { type: 'continue'; id: number } | { type: 'abort' };
