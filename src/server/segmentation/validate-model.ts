import { existsSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { type InteractiveManifest, type ModelManifest, interactiveManifestSchema, manifestSchema } from '../../shared/models.js';
import { MiB } from '../../shared/units.js';

// One model folder checked the way the server loads it — manifest, file size, the ONNX graph
// against the manifest, a dry run — shared by the registry (models.ts) and `strokeview models
// check`, so a folder the command passes is a folder the server loads.

/** What a graph input or output is, as onnxruntime reads it (symbolic dims are names). */
export interface GraphValue {
  name: string;
  /** Element type (`float32`, `float16`, …); null for a non-tensor value. */
  type: string | null;
  /** Null when the graph does not say. */
  shape: (number | string)[] | null;
}

export interface ModelCheck {
  dir: string;
  /** The manifest's id, or the folder's name when the manifest could not be read. */
  id: string;
  manifest: ModelManifest | InteractiveManifest | null;
  /** model.onnx and its external-data files, bytes. */
  fileBytes: number | null;
  graph: { inputs: GraphValue[]; outputs: GraphValue[] } | null;
  /** The zero input fed once, and what came out of the output the manifest names. */
  dryRun: { inputShape: number[]; outputName: string; outputShape: number[]; ms: number } | null;
  /** Each disagreement, one sentence (without the "model X:" prefix). */
  problems: string[];
}

export interface CheckOptions {
  /** A model file (with its external data) larger than this fails: one pool thread holds a session of each model. */
  maxModelBytes: number;
  /** Creates the session (the registry's CUDA fallback lives there). */
  open: (file: string) => Promise<ort.InferenceSession>;
}

/** Default MODEL_MAX_MB. */
export const DEFAULT_MODEL_MAX_MB = 2048;

/** The one line a failed check becomes in the registry's `failed`, `/readyz` and the log. */
export function checkMessage(check: Pick<ModelCheck, 'id' | 'problems'>): string {
  return `model ${check.id}: ${check.problems.join('; ')}`;
}

/** Input channels the network's tensor has: image channels, then (interactive) guidance and the previous mask. */
export function inputChannels(m: ModelManifest | InteractiveManifest): number {
  return m.kind === 'interactive' ? m.inputs.length + 2 + (m.previousMask ? 1 : 0) : m.inputs.length;
}

/** Reads and validates manifest.json: the manifest, or the problem in words. */
export async function readManifest(dir: string): Promise<{ manifest: ModelManifest | InteractiveManifest } | { problem: string }> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
  } catch (err) {
    if (err instanceof SyntaxError) return { problem: `manifest.json is not valid JSON: ${err.message}` };
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { problem: `no manifest.json in ${dir}` };
    return { problem: `cannot read manifest.json: ${(err as Error).message}` };
  }
  const schema = (raw as { kind?: unknown })?.kind === 'interactive' ? interactiveManifestSchema : manifestSchema;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    return { problem: `invalid manifest: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}` };
  }
  return { manifest: parsed.data };
}

/** model.onnx plus the external-data files exporters write beside it (`*.data`, `*.onnx_data`). */
async function modelBytes(dir: string): Promise<number> {
  let bytes = (await stat(path.join(dir, 'model.onnx'))).size;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isFile() && e.name !== 'model.onnx' && /(\.data|\.onnx_data)$/.test(e.name)) bytes += (await stat(path.join(dir, e.name))).size;
  }
  return bytes;
}

const describe = (v: ort.InferenceSession.ValueMetadata): GraphValue =>
  v.isTensor ? { name: v.name, type: v.type, shape: v.shape.length ? [...v.shape] : null } : { name: v.name, type: null, shape: null };

const dims = (shape: readonly (number | string)[]) => `[${shape.join(', ')}]`;
const isStatic = (d: number | string | undefined): d is number => typeof d === 'number' && d > 0;

/** The output the pipeline reads: by name when the manifest gives one, else by index. */
function chosenOutput(m: ModelManifest | InteractiveManifest, outputs: GraphValue[]): GraphValue | undefined {
  if (m.kind === 'interactive') return outputs[0];
  return m.output.name !== undefined ? outputs.find((o) => o.name === m.output.name) : outputs[m.output.index];
}

/** The channels inference reads as the lesion (as inference.ts does): `lesionClasses`, else `lesionClass` when the output has several, else channel 0. */
export function lesionChannels(m: ModelManifest, channels: number): number[] {
  return m.output.lesionClasses ?? [channels > 1 ? m.output.lesionClass : 0];
}

/** The patch in the graph's axis order (patchSize is x, y, z). */
const graphOrder = (m: { axisOrder: 'xyz' | 'zyx' }, xyz: readonly number[]) => (m.axisOrder === 'xyz' ? [...xyz] : [...xyz].reverse());

/** Channel-count agreement between an output's channels (static, or measured by the dry run) and the manifest. */
function outputChannelProblems(m: ModelManifest | InteractiveManifest, output: string, channels: number): string[] {
  const out: string[] = [];
  if (m.kind === 'interactive') {
    if (channels !== 1)
      out.push(`an interactive model answers one channel (the mask's probability), the graph's output \`${output}\` has ${channels}`);
    return out;
  }
  if (m.output.classes !== undefined && m.output.classes !== channels) {
    out.push(`manifest says output.classes ${m.output.classes}, the graph's output \`${output}\` has ${channels} channels`);
  }
  for (const c of lesionChannels(m, channels)) {
    if (c >= channels) {
      out.push(
        `manifest's lesion class ${c} does not exist: the graph's output \`${output}\` has ${channels} channel${channels === 1 ? '' : 's'} (0–${channels - 1})`,
      );
    }
  }
  if (m.output.activation === 'softmax' && channels === 1)
    out.push(`a softmax over the one channel of \`${output}\` is always 1: use sigmoid or none`);
  return out;
}

/** The graph's inputs and outputs against the manifest; each disagreement a sentence. */
export function compareGraph(m: ModelManifest | InteractiveManifest, graph: { inputs: GraphValue[]; outputs: GraphValue[] }): string[] {
  const problems: string[] = [];
  const { inputs, outputs } = graph;
  if (inputs.length !== 1) {
    problems.push(
      inputs.length === 0
        ? 'the graph has no input'
        : `the graph has ${inputs.length} inputs (${inputs.map((i) => `\`${i.name}\``).join(', ')}); strokeview feeds one tensor [N, C, …spatial]`,
    );
  }
  const input = inputs[0];
  const channels = inputChannels(m);
  if (input) {
    const name = `the graph's input \`${input.name}\``;
    const wantType = m.kind === 'interactive' ? 'float32' : m.inputType;
    if (input.type === null) problems.push(`${name} is not a tensor`);
    else if (input.type !== wantType) {
      problems.push(
        m.kind === 'interactive'
          ? `${name} is ${input.type}; interactive models take float32`
          : `manifest's inputType is ${wantType}, ${name} is ${input.type}`,
      );
    }
    const shape = input.shape;
    if (shape && shape.length !== 5) {
      problems.push(`${name} has rank ${shape.length} ${dims(shape)}; strokeview feeds rank 5 [N, C, …3 spatial dims]`);
    } else if (shape) {
      if (isStatic(shape[0]) && shape[0] !== 1)
        problems.push(`${name} has a fixed batch of ${shape[0]}; strokeview feeds one at a time (make it 1 or symbolic)`);
      if (isStatic(shape[1]) && shape[1] !== channels) {
        const what =
          m.kind === 'interactive'
            ? `${channels} input channels (${m.inputs.length} image + 2 guidance${m.previousMask ? ' + 1 previous mask' : ''})`
            : `${channels} input channel${channels === 1 ? '' : 's'} (${m.inputs.join(', ')})`;
        problems.push(`manifest says ${what}, ${name} has ${shape[1]}`);
      }
      const spatial = shape.slice(2);
      const fixed = spatial.some(isStatic);
      if (fixed && m.kind === 'interactive') {
        problems.push(
          `${name} has fixed spatial dims ${dims(spatial)}; an interactive model's crop (cropMm over the case's voxel size, cut at the volume's edge) varies, so they must be symbolic`,
        );
      } else if (fixed && m.kind !== 'interactive' && m.patchSize === null) {
        problems.push(
          `${name} has fixed spatial dims ${dims(spatial)} but the manifest's patchSize is null (the whole volume at once): give patchSize [x, y, z] (axisOrder ${m.axisOrder})`,
        );
      } else if (fixed && m.kind !== 'interactive' && m.patchSize) {
        const want = graphOrder(m, m.patchSize);
        if (spatial.some((d, i) => isStatic(d) && d !== want[i])) {
          problems.push(
            `manifest's patchSize [${m.patchSize.join(', ')}] (x, y, z) is ${dims(want)} in axisOrder ${m.axisOrder}, ${name} has ${dims(spatial)}`,
          );
        }
      }
    }
  }
  const output = chosenOutput(m, outputs);
  const names = outputs.map((o) => `\`${o.name}\``).join(', ') || 'none';
  if (!output) {
    if (m.kind !== 'interactive' && m.output.name !== undefined)
      problems.push(`manifest's output.name \`${m.output.name}\` is not among the graph's outputs (${names})`);
    else if (m.kind !== 'interactive')
      problems.push(
        `manifest's output.index ${m.output.index} is out of range: the graph has ${outputs.length} output${outputs.length === 1 ? '' : 's'} (${names})`,
      );
    else problems.push('the graph has no output');
    return problems;
  }
  const oname = `the graph's output \`${output.name}\``;
  if (output.type === null) problems.push(`${oname} is not a tensor`);
  else if (output.type !== 'float32' && output.type !== 'float16')
    problems.push(`${oname} is ${output.type}; strokeview reads float32 or float16`);
  if (output.shape && output.shape.length !== 5)
    problems.push(`${oname} has rank ${output.shape.length} ${dims(output.shape)}; strokeview reads rank 5 [N, K, …3 spatial dims]`);
  else if (output.shape && isStatic(output.shape[1])) problems.push(...outputChannelProblems(m, output.name, output.shape[1]));
  return problems;
}

/** Spatial dims for the dry run: the graph's static ones, else the patch capped at 32 (a 5-level U-Net needs multiples of 32), else 32. */
export function dryRunShape(m: ModelManifest | InteractiveManifest, input: GraphValue): number[] {
  const spatial = input.shape && input.shape.length === 5 ? input.shape.slice(2) : [undefined, undefined, undefined];
  const patch = m.kind !== 'interactive' && m.patchSize ? graphOrder(m, m.patchSize) : [32, 32, 32];
  return [1, inputChannels(m), ...spatial.map((d, i) => (isStatic(d) ? d : Math.min(32, patch[i]!)))];
}

/** Runs the session once on zeros; what came out, or the problem. */
async function dryRun(
  m: ModelManifest | InteractiveManifest,
  session: ort.InferenceSession,
  graph: { inputs: GraphValue[]; outputs: GraphValue[] },
): Promise<{ result: NonNullable<ModelCheck['dryRun']> } | { problems: string[] }> {
  const input = graph.inputs[0]!;
  const output = chosenOutput(m, graph.outputs)!;
  const shape = dryRunShape(m, input);
  const n = shape.reduce((a, b) => a * b, 1);
  const tensor =
    m.kind !== 'interactive' && m.inputType === 'float16'
      ? new ort.Tensor('float16', new Uint16Array(n), shape)
      : new ort.Tensor('float32', new Float32Array(n), shape);
  const started = performance.now();
  let out: ort.OnnxValue | undefined;
  try {
    // Its failure is reported in the check's words; onnxruntime's own error line would only repeat it on stderr.
    const results = await session.run({ [input.name]: tensor }, { logSeverityLevel: 4 });
    out = results[output.name];
  } catch (err) {
    return { problems: [`the dry run on zeros ${dims(shape)} failed: ${(err as Error).message.split('\n')[0]}`] };
  }
  const ms = performance.now() - started;
  if (!out || !('dims' in out)) return { problems: [`the dry run gave no tensor for the output \`${output.name}\``] };
  const got = [...out.dims];
  const problems: string[] = [];
  if (got.length !== 5)
    problems.push(`the dry run's output \`${output.name}\` has rank ${got.length} ${dims(got)}, not 5 [N, K, …spatial]`);
  else {
    if (got.slice(2).some((d, i) => d !== shape[2 + i]))
      problems.push(
        `the dry run fed spatial dims ${dims(shape.slice(2))} and the output \`${output.name}\` came back ${dims(got.slice(2))}`,
      );
    // Static channel counts were compared already; a symbolic one is known now.
    if (!(output.shape && isStatic(output.shape[1]))) problems.push(...outputChannelProblems(m, output.name, got[1]!));
  }
  if (problems.length) return { problems };
  return { result: { inputShape: shape, outputName: output.name, outputShape: got, ms } };
}

/**
 * Checks one model folder: the manifest, model.onnx's size against the budget, the session,
 * the graph against the manifest, a dry run. With no problem the session is handed over (the
 * caller owns it); otherwise it is released.
 */
export async function checkModelFolder(dir: string, opts: CheckOptions): Promise<ModelCheck & { session: ort.InferenceSession | null }> {
  const check: ModelCheck & { session: ort.InferenceSession | null } = {
    dir,
    id: path.basename(dir),
    manifest: null,
    fileBytes: null,
    graph: null,
    dryRun: null,
    problems: [],
    session: null,
  };
  const fail = (problem: string) => {
    check.problems.push(problem);
    return check;
  };
  const read = await readManifest(dir);
  if ('problem' in read) return fail(read.problem);
  const m = read.manifest;
  check.manifest = m;
  check.id = m.id;
  const file = path.join(dir, 'model.onnx');
  if (!existsSync(file)) return fail('model.onnx is missing');
  check.fileBytes = await modelBytes(dir);
  if (check.fileBytes > opts.maxModelBytes) {
    return fail(
      `model.onnx is ${(check.fileBytes / MiB).toFixed(0)} MiB, over MODEL_MAX_MB (${(opts.maxModelBytes / MiB).toFixed(0)} MiB): each CPU pool thread holds its own session of every model it runs`,
    );
  }
  let session: ort.InferenceSession;
  try {
    session = await opts.open(file);
  } catch (err) {
    return fail(`onnxruntime cannot load model.onnx: ${(err as Error).message.split('\n')[0]}`);
  }
  const graph = { inputs: session.inputMetadata.map(describe), outputs: session.outputMetadata.map(describe) };
  check.graph = graph;
  check.problems.push(...compareGraph(m, graph));
  if (!check.problems.length) {
    const ran = await dryRun(m, session, graph);
    if ('problems' in ran) check.problems.push(...ran.problems);
    else check.dryRun = ran.result;
  }
  if (check.problems.length) await session.release().catch(() => {});
  else check.session = session;
  return check;
}
