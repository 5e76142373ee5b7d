import { type DicomElementDict, dcmjs } from './dcmjs.js';
import { readHeaderFast } from './fast-header.js';
import { type InputFile, inputReader, notDicom } from './input-file.js';
import type { DicomPatient } from '../../shared/dicom-origin.js';
import { unprocessable } from '../errors.js';
import { cpuTask } from '../workers/task.js';

/**
 * Reads the headers of DICOM files (dcmjs, in the CPU pool) for what the import decides with:
 * study / series / SOP instance UIDs, SOP class, transfer syntax, geometry per image or frame,
 * b-values, and the patient and study modules (to filter them out — or keep them when the
 * deployment says so). Every file is checked on the way: a header dcmjs cannot read, an element
 * longer than the file, pixel data shorter than rows × columns × frames need, or an unsupported
 * transfer syntax refuses the import with a message naming the file. Objects that are not MR
 * images (structured reports, presentation states, DICOMDIRs, vendors' private objects) are
 * skipped and listed.
 *
 * One file (~400 lines) on purpose: the checks and the readings share the element walk, and a
 * check split from the reading it guards is a check that drifts from it.
 */

export type { InputFile } from './input-file.js';

export interface ScannedFrame {
  /** ImagePositionPatient (LPS, mm), or null when absent. */
  ipp: number[] | null;
  bValue: number | null;
  /** 1-based frame number in a multi-frame object; absent for classic single-frame images. */
  frameNumber?: number;
}

export interface ScannedImage {
  /** Index of the file in the scanned list. */
  file: number;
  studyUid: string;
  seriesUid: string;
  sopUid: string;
  sopClassUid: string;
  transferSyntax: string;
  seriesNumber: number | null;
  seriesDescription: string;
  protocolName: string;
  imageType: string[];
  instanceNumber: number | null;
  frameOfReferenceUid: string | null;
  rows: number;
  columns: number;
  pixelSpacing: number[] | null;
  sliceThickness: number | null;
  /** ImageOrientationPatient (row, column direction cosines), or null. */
  iop: number[] | null;
  frames: ScannedFrame[];
}

/** The patient and study modules of a study (as found in its first file), and every identifying string seen in any of its files. */
export interface StudyIdentity {
  patient: DicomPatient;
  /** Strings that must not be stored (names, IDs, dates of birth, accession numbers, institutions, physicians). */
  identifiers: string[];
}

export interface ScanResult {
  images: ScannedImage[];
  skipped: { file: number; reason: string }[];
  studies: Record<string, StudyIdentity>;
}

/** Transfer syntaxes the dcm2niix build reads (its JPEG build: JPEG, JPEG-LS, JPEG 2000, RLE). */
export const SUPPORTED_TRANSFER_SYNTAXES: Record<string, string> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless (first-order prediction)',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-Lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

const NATIVE = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2']);

const KNOWN_UNSUPPORTED: Record<string, string> = {
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.4.100': 'MPEG2',
  '1.2.840.10008.1.2.4.102': 'MPEG-4',
  '1.2.840.10008.1.2.4.103': 'MPEG-4',
  '1.2.840.10008.1.2.4.107': 'HEVC',
  '1.2.840.10008.1.2.4.108': 'HEVC',
  '1.2.840.10008.1.2.4.201': 'High-Throughput JPEG 2000',
  '1.2.840.10008.1.2.4.202': 'High-Throughput JPEG 2000',
  '1.2.840.10008.1.2.4.203': 'High-Throughput JPEG 2000',
};

/** MR image storage SOP classes: classic, enhanced, enhanced colour, legacy converted enhanced. */
export const MR_IMAGE_CLASSES = new Set([
  '1.2.840.10008.5.1.4.1.1.4',
  '1.2.840.10008.5.1.4.1.1.4.1',
  '1.2.840.10008.5.1.4.1.1.4.3',
  '1.2.840.10008.5.1.4.1.1.4.4',
]);

/** What other objects are, for the skipped list. */
function sopClassName(uid: string): string {
  if (uid === '1.2.840.10008.1.3.10') return 'a DICOMDIR (an index of the media, not an image)';
  if (uid.startsWith('1.2.840.10008.5.1.4.1.1.88.')) return 'a structured report';
  if (uid.startsWith('1.2.840.10008.5.1.4.1.1.11.')) return 'a presentation state';
  if (uid === '1.2.840.10008.5.1.4.1.1.104.1') return 'an encapsulated PDF';
  if (uid === '1.2.840.10008.5.1.4.1.1.66.4') return 'a segmentation';
  if (uid === '1.2.840.10008.5.1.4.1.1.66') return 'raw data';
  if (uid === '1.2.840.10008.5.1.4.1.1.4.2') return 'MR spectroscopy';
  if (uid.startsWith('1.2.840.10008.5.1.4.1.1.7')) return 'a secondary capture (a picture, not a scan)';
  if (uid.startsWith('1.2.840.10008.5.1.4.1.1.2')) return 'a CT image (the import reads MR)';
  if (uid.startsWith('1.3.46.670589.')) return "a Philips private object (the scanner's own data)";
  return `not an MR image (SOP class ${uid})`;
}

// dcmjs is silenced as it loads (dcmjs.ts) — its messages can quote header values — except here
// its validation logger's "declares N bytes but only M are available", which is how a truncated
// file or a huge declared element length shows: caught once per thread, before the first read.
let validationWarnings: string[] = [];
let listening = false;
function listenToValidation(): void {
  if (listening) return;
  const validationLog = dcmjs.log.getLogger('validation.dcmjs');
  validationLog.setLevel('silent');
  validationLog.warn = (...args: unknown[]) => void validationWarnings.push(args.map(String).join(' '));
  validationLog.error = validationLog.warn;
  listening = true;
}

function read(bytes: Buffer, options: Parameters<typeof dcmjs.data.DicomMessage.readFile>[1]) {
  listenToValidation();
  validationWarnings = [];
  // A copy of its own (the bytes may be a view of memory the threads share, which dcmjs is not given).
  const ab = new Uint8Array(bytes).buffer;
  const parsed = dcmjs.data.DicomMessage.readFile(ab, options);
  return { parsed, warnings: validationWarnings };
}

type Dict = DicomElementDict;

function first(dict: Dict, tag: string): unknown {
  const v = dict[tag]?.Value;
  return v && v.length > 0 ? v[0] : undefined;
}

function text(dict: Dict, tag: string): string | null {
  const v = first(dict, tag);
  if (v === undefined || v === null) return null;
  if (typeof v === 'object') {
    const pn = v as { Alphabetic?: string };
    return pn.Alphabetic?.trim() || null;
  }
  const s = String(v).trim();
  return s === '' ? null : s;
}

function texts(dict: Dict, tag: string): string[] {
  return (dict[tag]?.Value ?? []).map((v) =>
    (typeof v === 'object' && v ? ((v as { Alphabetic?: string }).Alphabetic ?? '') : String(v)).trim(),
  );
}

function num(dict: Dict, tag: string): number | null {
  const v = first(dict, tag);
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : null;
}

function nums(dict: Dict, tag: string): number[] | null {
  const v = dict[tag]?.Value;
  if (!v || v.length === 0) return null;
  const out = v.map((x) => (typeof x === 'number' ? x : Number(x)));
  return out.every(Number.isFinite) ? out : null;
}

function items(dict: Dict, tag: string): Dict[] {
  return (dict[tag]?.Value ?? []) as Dict[];
}

const PATIENT_TAGS: Record<keyof DicomPatient, string> = {
  patientName: '00100010',
  patientId: '00100020',
  patientBirthDate: '00100030',
  patientSex: '00100040',
  patientAge: '00101010',
  accessionNumber: '00080050',
  referringPhysicianName: '00080090',
  studyDate: '00080020',
  studyTime: '00080030',
  studyId: '00200010',
  studyDescription: '00081030',
};

/** Elements whose values identify a person or a place: never stored (unless kept), scrubbed from every text we keep or show. */
const IDENTIFYING_TAGS = [
  '00100010', // PatientName
  '00100020', // PatientID
  '00100030', // PatientBirthDate
  '00101000', // OtherPatientIDs
  '00101001', // OtherPatientNames
  '00101040', // PatientAddress
  '00102154', // PatientTelephoneNumbers
  '00080050', // AccessionNumber
  '00080080', // InstitutionName
  '00080081', // InstitutionAddress
  '00081040', // InstitutionalDepartmentName
  '00080090', // ReferringPhysicianName
  '00081050', // PerformingPhysicianName
  '00081060', // NameOfPhysiciansReadingStudy
  '00081070', // OperatorsName
  '00081010', // StationName
  '00181000', // DeviceSerialNumber
  '00200010', // StudyID
];

function identityOf(dict: Dict): StudyIdentity {
  const patient = Object.fromEntries(Object.entries(PATIENT_TAGS).map(([k, tag]) => [k, text(dict, tag)])) as DicomPatient;
  const identifiers = new Set<string>();
  for (const tag of IDENTIFYING_TAGS) {
    for (const v of texts(dict, tag)) {
      if (v.length >= 3) identifiers.add(v);
      // A date of birth as converters write it too (19230405 → 1923-04-05).
      if (tag === '00100030' && /^\d{8}$/.test(v)) identifiers.add(`${v.slice(0, 4)}-${v.slice(4, 6)}-${v.slice(6, 8)}`);
      // A person name's components (DOE^JOHN) may appear apart, or joined by spaces.
      if (v.includes('^')) {
        for (const part of v.split('^')) if (part.trim().length >= 3) identifiers.add(part.trim());
        identifiers.add(v.replace(/\^+/g, ' ').trim());
      }
    }
  }
  return { patient, identifiers: [...identifiers] };
}

/** Every dataset element `scanFile` and `identityOf` read (the fast path decodes these only). */
const SCAN_TAGS = new Set([
  ...['00080008', '00080016', '00080018', '0008103E', '00180050', '00181030', '00189087'],
  ...['0020000D', '0020000E', '00200011', '00200013', '00200032', '00200037', '00200052'],
  ...['00280002', '00280008', '00280010', '00280011', '00280030', '00280100'],
  ...Object.values(PATIENT_TAGS),
  ...IDENTIFYING_TAGS,
]);

/** The message for a file that cannot be used: it names the file, and the import stops. */
const badFile = (name: string, problem: string) => unprocessable(`${name}: ${problem}`, { field: 'files' });

/**
 * Pixel data as long as the header says (native transfer syntaxes): the element is nearly
 * always last, so its header is read where it must sit; when it is not there, the whole file
 * is parsed once (the slow path, for odd or broken files only).
 */
function checkPixelData(name: string, bytes: Buffer, ts: string, expected: number, dcmjsWarnings: string[]): void {
  const le = ts !== '1.2.840.10008.1.2.2';
  const tagAt = (at: number) =>
    at >= 0 &&
    (le
      ? bytes[at] === 0xe0 && bytes[at + 1] === 0x7f && bytes[at + 2] === 0x10 && bytes[at + 3] === 0x00
      : bytes[at] === 0x7f && bytes[at + 1] === 0xe0 && bytes[at + 2] === 0x00 && bytes[at + 3] === 0x10);
  const len32 = (at: number) => (le ? bytes.readUInt32LE(at) : bytes.readUInt32BE(at));
  if (ts === '1.2.840.10008.1.2') {
    const at = bytes.length - expected - 8;
    if (tagAt(at) && len32(at + 4) === expected) return;
  } else {
    const at = bytes.length - expected - 12;
    if (tagAt(at) && len32(at + 8) === expected) return;
  }
  // Not where it belongs: parse everything, and judge by what dcmjs found and said.
  let found: number | undefined;
  let warnings: string[];
  try {
    const r = read(bytes, {});
    warnings = r.warnings;
    const px = r.parsed.dict['7FE00010']?.Value?.[0] as ArrayBuffer | undefined;
    found = px?.byteLength;
  } catch {
    throw badFile(name, 'the file is truncated or corrupt (its elements run past the end of the file)');
  }
  const declared = [...dcmjsWarnings, ...warnings].find((w) => /declares \d+ bytes but only \d+ are available/.test(w));
  if (declared) {
    const [, n, m] = /declares (\d+) bytes but only (\d+)/.exec(declared)!;
    throw badFile(name, `an element declares ${n} bytes but only ${m} remain in the file (truncated, or a corrupt length)`);
  }
  if (found === undefined) throw badFile(name, 'an MR image without pixel data');
  if (found < expected) throw badFile(name, `the pixel data is truncated: ${found} bytes, the image needs ${expected}`);
}

/** One file's header. Returns the image, or why it is skipped; throws (naming the file) when it is broken. */
export function scanFile(
  bytes: Buffer,
  name: string,
  opts: { fast?: boolean } = {},
): { image: Omit<ScannedImage, 'file'>; identity: StudyIdentity } | { skip: string } {
  let parsed;
  let warnings: string[] = [];
  try {
    // Up to group 0028 only: everything the import needs sits before the vendors' private
    // groups and the pixel data, which together are most of a header's parsing time. A
    // well-formed explicit-VR LE file is walked by the fast path (fast-header.ts); dcmjs reads
    // the rest (and every file when `fast` is false: the tests compare the two).
    const fast = opts.fast === false ? null : readHeaderFast(bytes, SCAN_TAGS);
    if (fast) parsed = fast;
    else ({ parsed, warnings } = read(bytes, { untilTag: '00290000', stopOnGreaterTag: true }));
  } catch (err) {
    throw badFile(name, `not a readable DICOM file (${(err as Error).message.replace(/ for start=.*$/, '').slice(0, 120)})`);
  }
  const declared = warnings.find((w) => /declares \d+ bytes but only \d+ are available/.test(w));
  if (declared) {
    const [, n, m] = /declares (\d+) bytes but only (\d+)/.exec(declared)!;
    throw badFile(name, `an element declares ${n} bytes but only ${m} remain in the file (truncated, or a corrupt length)`);
  }
  const { meta, dict } = parsed;
  const sopClassUid = text(dict, '00080016') ?? text(meta, '00020002') ?? '';
  if (!MR_IMAGE_CLASSES.has(sopClassUid)) return { skip: sopClassName(sopClassUid) };
  const ts = text(meta, '00020010') ?? '';
  if (!(ts in SUPPORTED_TRANSFER_SYNTAXES)) {
    const what = KNOWN_UNSUPPORTED[ts] ?? (ts ? 'unknown' : 'none given');
    throw badFile(
      name,
      `transfer syntax ${ts || '(missing)'} (${what}) is not supported; send it uncompressed, or as JPEG, JPEG-LS, JPEG 2000 or RLE (e.g. \`dcmconv +te\` or \`gdcmconv -w\` decompresses it)`,
    );
  }
  const studyUid = text(dict, '0020000D');
  const seriesUid = text(dict, '0020000E');
  const sopUid = text(dict, '00080018');
  if (!studyUid || !seriesUid || !sopUid) throw badFile(name, 'the header has no Study, Series or SOP Instance UID');
  const rows = num(dict, '00280010') ?? 0;
  const columns = num(dict, '00280011') ?? 0;
  const frameCount = Math.max(1, num(dict, '00280008') ?? 1);
  if (rows <= 0 || columns <= 0) throw badFile(name, 'an MR image without rows and columns');
  if (NATIVE.has(ts)) {
    const bits = num(dict, '00280100') ?? 16;
    const samples = num(dict, '00280002') ?? 1;
    checkPixelData(name, bytes, ts, rows * columns * samples * Math.ceil(bits / 8) * frameCount, warnings);
  } else {
    // Encapsulated: the fragments end with a sequence delimiter; a file cut short does not.
    const tail = bytes.subarray(bytes.length - 8);
    if (!(tail[0] === 0xfe && tail[1] === 0xff && tail[2] === 0xdd && tail[3] === 0xe0)) {
      throw badFile(name, 'the compressed pixel data is truncated (it does not end with its sequence delimiter)');
    }
  }
  let iop = nums(dict, '00200037');
  let pixelSpacing = nums(dict, '00280030');
  let sliceThickness = num(dict, '00180050');
  let frames: ScannedFrame[] = [{ ipp: nums(dict, '00200032'), bValue: num(dict, '00189087') }];
  if (frameCount > 1 || sopClassUid !== '1.2.840.10008.5.1.4.1.1.4') {
    // Enhanced (multi-frame) objects keep geometry and b-values per frame, in functional groups
    // after the pixel module: read the whole header for them.
    let full: Dict;
    try {
      full = read(bytes, { untilTag: '7FE00010', includeUntilTagValue: false }).parsed.dict;
    } catch {
      throw badFile(name, 'the file is truncated or corrupt (its functional groups cannot be read)');
    }
    const shared = items(full, '52009229')[0] ?? {};
    const perFrame = items(full, '52009230');
    const group = (d: Dict, seq: string) => items(d, seq)[0] ?? {};
    iop = nums(group(shared, '00209116'), '00200037') ?? iop;
    const measures = group(shared, '00289110');
    pixelSpacing = nums(measures, '00280030') ?? pixelSpacing;
    sliceThickness = num(measures, '00180050') ?? sliceThickness;
    const sharedB = num(group(shared, '00189117'), '00189087');
    frames = Array.from({ length: frameCount }, (_, f) => {
      const pf = perFrame[f] ?? {};
      return {
        ipp: nums(group(pf, '00209113'), '00200032'),
        bValue: num(group(pf, '00189117'), '00189087') ?? sharedB,
        frameNumber: f + 1,
      };
    });
    iop ??= nums(group(perFrame[0] ?? {}, '00209116'), '00200037');
  }
  return {
    image: {
      studyUid,
      seriesUid,
      sopUid,
      sopClassUid,
      transferSyntax: ts,
      seriesNumber: num(dict, '00200011'),
      seriesDescription: text(dict, '0008103E') ?? '',
      protocolName: text(dict, '00181030') ?? '',
      imageType: texts(dict, '00080008'),
      instanceNumber: num(dict, '00200013'),
      frameOfReferenceUid: text(dict, '00200052'),
      rows,
      columns,
      pixelSpacing,
      sliceThickness,
      iop,
      frames,
    },
    identity: identityOf(dict),
  };
}

/**
 * The CPU task: scans files (each read in the thread: from disk, from shared memory, or a zip entry inflated from its archive); the
 * first broken one stops it with a message naming it. A zip entry that is not DICOM is skipped.
 */
export function scanDicomFiles(input: { files: InputFile[]; offset: number }): ScanResult {
  const result: ScanResult = { images: [], skipped: [], studies: {} };
  const reader = inputReader();
  try {
    input.files.forEach((f, i) => scanOne(f, input.offset + i));
  } finally {
    reader.close();
  }
  return result;

  function scanOne(f: InputFile, file: number) {
    const bytes = reader.read(f);
    const why = f.entry ? notDicom(bytes) : null;
    if (why) {
      result.skipped.push({ file, reason: why });
      return;
    }
    const scanned = scanFile(bytes, f.name);
    if ('skip' in scanned) {
      result.skipped.push({ file, reason: scanned.skip });
      return;
    }
    result.images.push({ file, ...scanned.image });
    const known = result.studies[scanned.image.studyUid];
    if (!known) result.studies[scanned.image.studyUid] = scanned.identity;
    else known.identifiers = [...new Set([...known.identifiers, ...scanned.identity.identifiers])];
  }
}
export const scanDicomFilesTask = cpuTask<Parameters<typeof scanDicomFiles>[0], ScanResult>(import.meta.url, 'scanDicomFiles');
