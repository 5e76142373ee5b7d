import { createRequire } from 'node:module';

// dcmjs (0.52, a well-kept DICOM library for JavaScript) ships no types: the small part the
// import uses is typed here — reading a Part 10 file into its element dictionary, and the
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
export interface Dcmjs {
  data: { DicomMessage: { readFile(buffer: ArrayBuffer, options?: ReadOptions): DicomDict } };
  log: DcmjsLogger;
}

export const dcmjs = createRequire(import.meta.url)('dcmjs') as Dcmjs;
