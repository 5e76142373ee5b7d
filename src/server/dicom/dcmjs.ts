import { createRequire } from 'node:module';

// dcmjs (0.52, a well-kept DICOM library for JavaScript) ships no types: the small part the
// import and the SEG export use is typed here — reading a Part 10 file into its element dictionary,
// writing a naturalized dataset, packing binary frames, and the
// loglevel loggers it warns through. Loaded as the package's CommonJS build.

export interface DicomElement {
  vr: string;
  Value?: unknown[];
}
export type DicomElementDict = Record<string, DicomElement>;
export interface DicomDict {
  meta: DicomElementDict;
  dict: DicomElementDict;
}
export interface ReadOptions {
  untilTag?: string;
  includeUntilTagValue?: boolean;
  stopOnGreaterTag?: boolean;
  ignoreErrors?: boolean;
}
export interface DcmjsLogger {
  setLevel(level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent'): void;
  getLogger(name: string): DcmjsLogger;
  warn: (...args: unknown[]) => void;
  error: (...args: unknown[]) => void;
}
/** A naturalized dataset: keywords → values (sequences are arrays of datasets). */
export type DicomDataset = Record<string, unknown>;
export interface Dcmjs {
  data: {
    DicomMessage: { readFile(buffer: ArrayBuffer, options?: ReadOptions): DicomDict };
    DicomMetaDictionary: { naturalizeDataset(dict: DicomElementDict): DicomDataset };
    BitArray: { pack(pixels: Uint8Array): Uint8Array; unpack(packed: ArrayBuffer): Uint8Array };
    /** A naturalized dataset (with `_meta`) → Part 10 bytes. */
    datasetToBuffer(dataset: DicomDataset): Buffer;
  };
  log: DcmjsLogger;
}

let loaded: Dcmjs | undefined;
/**
 * dcmjs itself, loaded at its first use rather than with the server: it is 1.5 MB of JavaScript
 * that builds its tag dictionary as it loads, and a restart needs none of it (#29). It warns
 * (through loglevel, to the console) about what it reads: silenced as it loads — its messages can
 * quote header values (the header scan listens to one logger of its own: scan.ts).
 */
function load(): Dcmjs {
  if (!loaded) {
    loaded = createRequire(import.meta.url)('dcmjs') as Dcmjs;
    loaded.log.setLevel('silent');
  }
  return loaded;
}
export const dcmjs: Dcmjs = {
  get data() {
    return load().data;
  },
  get log() {
    return load().log;
  },
};
