import { readFileSync } from 'node:fs';
import { unprocessable } from '../errors.js';
import { type InputFile, inputReader, isDicom } from './input-file.js';
import { cpuTask } from '../workers/task.js';

/**
 * dcm2niix — the converter the field trusts — as its WebAssembly build from npm
 * (`@niivue/dcm2niix`, the `dcm2niix.jpeg` variant: JPEG, JPEG-LS and JPEG 2000 codecs built in).
 * The package exports only its browser entry; beside it sits the Emscripten module, which runs in
 * Node as it is, so it is loaded by file URL. Runs in a CPU-pool thread: the module is compiled
 * once per thread, and every conversion gets a fresh instance (its in-memory file system and its
 * heap are dropped afterwards, and no state leaks from one study into the next).
 */

interface EmscriptenFs {
  mkdir(path: string): void;
  writeFile(path: string, data: Uint8Array, opts?: { canOwn?: boolean }): void;
  readFile(path: string): Uint8Array;
  readdir(path: string): string[];
}

interface Dcm2niixModule {
  FS: EmscriptenFs;
  callMain(args: string[]): number;
}

// Node's WebAssembly, typed by hand: the server's build has no DOM library, where its types live.
type WasmModule = object;
interface WasmInstance {
  exports: object;
}
const Wasm = (
  globalThis as unknown as {
    WebAssembly: {
      compile(bytes: Uint8Array): Promise<WasmModule>;
      instantiate(module: WasmModule, imports: object): Promise<WasmInstance>;
    };
  }
).WebAssembly;

interface ModuleOptions {
  noInitialRun: boolean;
  thisProgram: string;
  arguments: string[];
  print: (line: string) => void;
  printErr: (line: string) => void;
  instantiateWasm: (imports: object, receive: (instance: WasmInstance, module: WasmModule) => object) => Promise<object>;
}

type Factory = (options: ModuleOptions) => Promise<Dcm2niixModule>;

let loaded: Promise<{ factory: Factory; wasm: WasmModule }> | undefined;

function load() {
  loaded ??= (async () => {
    const entry = import.meta.resolve('@niivue/dcm2niix');
    const mod = (await import(new URL('./dcm2niix.jpeg.js', entry).href)) as { default: Factory };
    const wasm = await Wasm.compile(readFileSync(new URL('./dcm2niix.jpeg.wasm', entry)));
    return { factory: mod.default, wasm };
  })();
  loaded.catch(() => (loaded = undefined));
  return loaded;
}

export interface Dcm2niixOutput {
  /** Output files by name (`<stem>.nii`, `.json`, `.bval`, `.bvec`): a plain object, so a thread's answer moves the bytes rather than copy them. */
  files: Record<string, Uint8Array>;
  /** Every line dcm2niix printed (stdout and stderr, in order; stderr lines start with `Error:` or are marked). */
  lines: string[];
  exitCode: number;
  /** dcm2niix's own run (callMain). */
  ms: number;
  /** Before it: a fresh instance, and every input put into its file system (read from disk, a zip entry inflated or already in shared memory). */
  inputsMs: number;
}

/**
 * Converts the given DICOM files (already checked: every one an MR image of one study) into
 * NIfTI + BIDS sidecars + b-values in memory. Output names are `<SeriesInstanceUID>_<series
 * number>` plus dcm2niix's own suffixes, so each output is traced to its series without a header
 * value a person could be identified by.
 */
export async function runDcm2niix(inputs: InputFile[]): Promise<Dcm2niixOutput> {
  const { factory, wasm } = await load();
  const started = performance.now();
  const lines: string[] = [];
  const instance = await factory({
    noInitialRun: true,
    thisProgram: 'dcm2niix',
    arguments: [],
    print: (l) => lines.push(l),
    printErr: (l) => lines.push(l),
    // The module compiled once per thread; this build awaits what the hook returns as its exports.
    instantiateWasm: (imports, receive) => Wasm.instantiate(wasm, imports).then((inst) => receive(inst, wasm)),
  });
  const fs = instance.FS;
  fs.mkdir('/in');
  fs.mkdir('/out');
  // A zip's entries come inflated already (inflateInPool: memory the threads share; the file system
  // keeps views of it, no copies) or are inflated here, one at a time; entries that are not DICOM
  // are left out (the scan lists them), under the same `/in/<n>` numbering.
  const reader = inputReader();
  try {
    inputs.forEach((f, i) => {
      const bytes = reader.read(f);
      // canOwn: the file system keeps this buffer (or view of shared memory: dcm2niix only reads /in) rather than copy it.
      if (!f.entry || isDicom(bytes)) fs.writeFile(`/in/${i}`, bytes, { canOwn: true });
    });
  } finally {
    reader.close();
  }
  const t0 = performance.now();
  const inputsMs = t0 - started;
  // Emscripten sets process.exitCode when main returns non-zero: it is this thread's, not the
  // server's, but is put back all the same.
  const exitCodeBefore = process.exitCode;
  let exitCode: number;
  try {
    exitCode = instance.callMain([
      '-z', 'n', // uncompressed: the import reads the voxels right away
      '-b', 'y', // a BIDS sidecar per output (sequence facts for the roles)
      '-ba', 'y', // …anonymised by dcm2niix (the import keeps only an allowlist of its fields anyway)
      '-f', '%j_%s', // SeriesInstanceUID_seriesNumber: traceable to the series, nothing identifying
      '-i', 'n',
      '-p', 'y', // Philips: precise (floating-point) scaling, as the field converts
      '-v', '0',
      '-o', '/out',
      '/in',
    ]); // prettier-ignore
  } catch (err) {
    const message = String((err as Error)?.message ?? err);
    if (/OOM|out of memory|Cannot enlarge memory/i.test(message)) {
      throw unprocessable(
        "The converter ran out of memory (dcm2niix's WebAssembly build has 2 GiB): the study is too large to convert here",
        { field: 'files' },
      );
    }
    throw unprocessable(`The converter (dcm2niix) stopped: ${message.slice(0, 200)}`, { field: 'files' });
  } finally {
    process.exitCode = exitCodeBefore;
  }
  const ms = performance.now() - t0;
  const files: Record<string, Uint8Array> = {};
  for (const name of fs.readdir('/out')) {
    if (name.startsWith('.')) continue;
    files[name] = fs.readFile(`/out/${name}`);
  }
  return { files, lines, exitCode, ms, inputsMs };
}

/** The CPU task: dcm2niix alone, for an import that runs it beside the header scan (service.ts). */
export const convertFiles = (input: { files: InputFile[] }) => runDcm2niix(input.files);
export const convertFilesTask = cpuTask<{ files: InputFile[] }, Dcm2niixOutput>(import.meta.url, 'convertFiles');
