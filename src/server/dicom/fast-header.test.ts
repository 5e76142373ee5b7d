import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_PHILIPS, PHILIPS_DIR, PHILIPS_SKIP_NOTE, copyDicom, modify, requireDcmtk } from '../test/dicom.js';
import { readHeaderFast } from './fast-header.js';
import { scanFile } from './scan.js';

// The header scan's fast path must read exactly what dcmjs reads: every file's scan (image facts,
// patient data and identifiers, or the skip / the error) is compared with dcmjs's, on the real
// series and on variants that must leave the fast path (implicit VR, a non-ASCII name, a cut file).

const scanned = (bytes: Buffer, name: string, fast: boolean) => {
  try {
    return scanFile(bytes, name, { fast });
  } catch (err) {
    return { error: String(err) };
  }
};

function expectSameScans(dir: string): number {
  let fast = 0;
  for (const name of readdirSync(dir)) {
    const bytes = readFileSync(path.join(dir, name));
    expect(scanned(bytes, name, true), name).toEqual(scanned(bytes, name, false));
    if (readHeaderFast(bytes, new Set(['00100010', '00080080']))) fast++;
  }
  return fast;
}

describe.skipIf(!HAVE_PHILIPS)(`the header scan's fast path${PHILIPS_SKIP_NOTE}`, () => {
  const made: string[] = [];
  beforeAll(() => requireDcmtk());
  afterAll(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('reads every file of the Philips series (images, a presentation state, private objects) as dcmjs does', () => {
    expect(expectSameScans(PHILIPS_DIR)).toBe(readdirSync(PHILIPS_DIR).length);
  });

  it('leaves to dcmjs what it does not read: implicit VR, non-ASCII names, cut files, a corrupt length', async () => {
    const only = (f: string) => ['IM_0001', 'IM_0002', 'IM_0003', 'PS_0545', 'XX_0546'].includes(f);
    const dir = copyDicom(PHILIPS_DIR, only);
    made.push(dir);
    execFileSync('dcmconv', ['+ti', path.join(dir, 'IM_0001'), path.join(dir, 'implicit')]);
    await modify(dir, ['(0010,0010)=Müller^Jöhn', '(0008,0080)=Krankenhaus Überlingen'], ['IM_0002', 'PS_0545']);
    const whole = readFileSync(path.join(dir, 'IM_0003'));
    writeFileSync(path.join(dir, 'cut-header'), whole.subarray(0, 900));
    writeFileSync(path.join(dir, 'cut-pixels'), whole.subarray(0, whole.length - 5000));
    const corrupt = Buffer.from(whole);
    const at = corrupt.indexOf('DTI_Biobank'); // the series description's value: its length made huge
    corrupt.writeUInt16LE(60_000, at - 2);
    writeFileSync(path.join(dir, 'corrupt-length'), corrupt);
    // IM_0001, IM_0003, XX_0546 and the file cut in its pixel data stay on the fast path (the pixel
    // check judges the last); the rest go to dcmjs, with the same result.
    expect(expectSameScans(dir)).toBe(4);
  });
});
