import type { DicomDict, DicomElementDict } from './dcmjs.js';

/**
 * The header scan's fast path: the top-level elements before group 0029 of a well-formed Explicit
 * VR Little Endian file (the meta group, and the dataset of every native LE and compressed
 * transfer syntax), in dcmjs's dictionary shape, for the tags the scan asks for only. dcmjs builds
 * every element of every sequence (~5 µs each, ~180 per Philips slice); this walks the same bytes
 * and decodes a few dozen values. Anything it does not read the way dcmjs would — implicit VR, big
 * endian, a length past the end of the file, a non-ASCII string (character sets), an undefined-length
 * UN — answers null, and the caller reads the file with dcmjs as before (its checks and messages).
 */

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT', 'SV', 'UV']);
const TEXT_VRS = new Set(['AE', 'AS', 'CS', 'DA', 'DT', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM', 'UC', 'UI', 'UR', 'UT']);
const UNDEFINED = 0xffffffff;
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
/** Transfer syntaxes whose dataset is Explicit VR Little Endian: native explicit LE, and every encapsulated one the import reads. */
const explicitLe = (ts: string) => ts === EXPLICIT_LE || ts.startsWith('1.2.840.10008.1.2.4.') || ts === '1.2.840.10008.1.2.5';

/** The meta elements the scan reads: the SOP class and the transfer syntax. */
const META_TAGS = new Set(['00020002', '00020010']);

class Unreadable extends Error {}
const giveUp = (): never => {
  throw new Unreadable();
};

const hex = (group: number, element: number) => ((group << 16) | element).toString(16).toUpperCase().padStart(8, '0');

function value(bytes: Buffer, vr: string, start: number, length: number): unknown[] {
  if (TEXT_VRS.has(vr) || vr === 'DS' || vr === 'IS') {
    for (let i = start; i < start + length; i++) if (bytes[i]! >= 0x80 || bytes[i] === 0x1b) giveUp();
    const raw = bytes.toString('latin1', start, start + length).replace(/[\0 ]+$/, '');
    if (vr === 'DS' || vr === 'IS') return raw.trim() === '' ? [] : raw.split('\\').map((s) => Number(s.trim()));
    if (vr === 'PN') return raw === '' ? [] : [{ Alphabetic: raw.split('=')[0] }];
    // dcmjs keeps an empty element as one empty string; LT/ST/UT are single values (a backslash is text there).
    return vr === 'LT' || vr === 'ST' || vr === 'UT' ? [raw] : raw.split('\\').map((s) => s.trim());
  }
  const sizes: Record<string, [number, (at: number) => number]> = {
    US: [2, (at) => bytes.readUInt16LE(at)],
    SS: [2, (at) => bytes.readInt16LE(at)],
    UL: [4, (at) => bytes.readUInt32LE(at)],
    SL: [4, (at) => bytes.readInt32LE(at)],
    FL: [4, (at) => bytes.readFloatLE(at)],
    FD: [8, (at) => bytes.readDoubleLE(at)],
  };
  const codec = sizes[vr] ?? giveUp();
  const [size, read] = codec;
  if (length % size !== 0) giveUp();
  return Array.from({ length: length / size }, (_, k) => read(start + k * size));
}

/** Skips an undefined-length sequence's items (each walked to its delimiter); returns the offset after the sequence delimiter. */
function skipSequence(bytes: Buffer, at: number): number {
  for (;;) {
    if (at + 8 > bytes.length) giveUp();
    const group = bytes.readUInt16LE(at);
    const element = bytes.readUInt16LE(at + 2);
    const length = bytes.readUInt32LE(at + 4);
    at += 8;
    if (group !== 0xfffe) giveUp();
    if (element === 0xe0dd) return at;
    if (element !== 0xe000) giveUp();
    if (length !== UNDEFINED) {
      at += length;
      continue;
    }
    // An undefined-length item: its elements up to the item delimiter.
    for (;;) {
      if (at + 8 > bytes.length) giveUp();
      if (bytes.readUInt16LE(at) === 0xfffe && bytes.readUInt16LE(at + 2) === 0xe00d) {
        at += 8;
        break;
      }
      at = walkElement(bytes, at, null);
    }
  }
}

/** Reads (when wanted) or skips one explicit-VR LE element at `at`; returns the offset after it. */
function walkElement(bytes: Buffer, at: number, out: DicomElementDict | null, wanted?: ReadonlySet<string>): number {
  if (at + 8 > bytes.length) giveUp();
  const group = bytes.readUInt16LE(at);
  const element = bytes.readUInt16LE(at + 2);
  const vr = bytes.toString('latin1', at + 4, at + 6);
  if (!/^[A-Z]{2}$/.test(vr)) giveUp();
  let length: number;
  let start: number;
  if (LONG_VRS.has(vr)) {
    if (at + 12 > bytes.length) giveUp();
    length = bytes.readUInt32LE(at + 8);
    start = at + 12;
  } else {
    length = bytes.readUInt16LE(at + 6);
    start = at + 8;
  }
  if (length === UNDEFINED) {
    if (vr !== 'SQ') giveUp(); // an undefined-length UN is implicit VR inside: dcmjs's job
    return skipSequence(bytes, start);
  }
  if (start + length > bytes.length) giveUp();
  if (out) {
    const tag = hex(group, element);
    if (wanted?.has(tag)) out[tag] = { vr, Value: value(bytes, vr, start, length) };
  }
  return start + length;
}

/** The meta group and the dataset's elements before `stopGroup`, or null when dcmjs must read the file. */
export function readHeaderFast(bytes: Buffer, wanted: ReadonlySet<string>, stopGroup = 0x0029): DicomDict | null {
  try {
    if (bytes.length < 132 || bytes.toString('latin1', 128, 132) !== 'DICM') return null;
    const meta: DicomElementDict = {};
    let at = 132;
    while (at + 8 <= bytes.length && bytes.readUInt16LE(at) === 0x0002) at = walkElement(bytes, at, meta, META_TAGS);
    const ts = meta['00020010']?.Value?.[0];
    if (typeof ts !== 'string' || !explicitLe(ts)) return null;
    const dict: DicomElementDict = {};
    while (at + 8 <= bytes.length && bytes.readUInt16LE(at) < stopGroup) at = walkElement(bytes, at, dict, wanted);
    // Stopped before the end without reaching a later group: something odd (a short tail) — dcmjs decides.
    if (at + 8 > bytes.length && at !== bytes.length) return null;
    return { meta, dict };
  } catch (err) {
    if (err instanceof Unreadable || err instanceof RangeError) return null;
    throw err;
  }
}
