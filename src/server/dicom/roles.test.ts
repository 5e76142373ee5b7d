import { describe, expect, it } from 'vitest';
import type { Affine } from '../../shared/nifti.js';
import { isDomainError } from '../errors.js';
import { type ConvertedOutput, type ConvertedSeries, chooseRoles, classifyOutput, sidecarFacts } from './roles.js';

// Which series becomes which role, from sequence facts and b-values (no converter needed).

const AFFINE: Affine = [
  [-2, 0, 0, 110],
  [0, 2, 0, -110],
  [0, 0, 2, -40],
  [0, 0, 0, 1],
];

function series(
  n: number,
  description: string,
  out: Partial<ConvertedOutput> & { imageType?: string[] },
  problem: string | null = null,
): ConvertedSeries {
  const { imageType = [], ...o } = out;
  return {
    seriesUid: `1.2.3.${n}`,
    seriesNumber: n,
    description,
    images: 100,
    imageType,
    problem,
    outputs: [{ stem: `1.2.3.${n}_${n}`, dims: [112, 112, 32], volumes: 1, affine: AFFINE, bValues: null, sidecar: {}, ...o }],
  };
}

const raw = (n: number, problem: string | null = null) =>
  series(
    n,
    'ep2d_diff_3scan',
    { volumes: 4, bValues: [0, 1000, 1000, 1000], sidecar: { ImageType: ['ORIGINAL', 'PRIMARY', 'DIFFUSION', 'NONE'] } },
    problem,
  );
const tracew = (n: number) =>
  series(n, 'ep2d_diff_3scan_TRACEW', {
    volumes: 2,
    bValues: [0, 1000],
    sidecar: { ImageType: ['DERIVED', 'PRIMARY', 'DIFFUSION', 'TRACEW', 'ND'] },
  });
const adc = (n: number) => series(n, 'ep2d_diff_3scan_ADC', { sidecar: { ImageType: ['DERIVED', 'PRIMARY', 'DIFFUSION', 'ADC', 'ND'] } });
const flair = (n: number) =>
  series(n, 't2_tirm_tra_dark-fluid', {
    dims: [256, 256, 30],
    sidecar: { ScanningSequence: 'SE\\IR', InversionTime: 2.5, EchoTime: 0.09 },
  });
const t1 = (n: number) =>
  series(n, 't1_mprage', { dims: [176, 256, 256], sidecar: { ScanningSequence: 'GR\\IR', InversionTime: 0.9, EchoTime: 0.003 } });

const roles = (all: ConvertedSeries[], choice = {}) => {
  const d = chooseRoles(all, choice);
  return {
    dwi: [d.dwi.series.seriesNumber, d.dwi.how],
    adc: [d.adc.series.seriesNumber, d.adc.how],
    flair: d.flair?.series.seriesNumber ?? null,
    notes: Object.fromEntries([...d.notes].map(([uid, n]) => [uid.split('.').pop(), [n.kind, n.role]])),
  };
};

const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (isDomainError(err, 'unprocessable')) return err.message;
    throw err;
  }
  throw new Error('no refusal');
};

describe('series → roles', () => {
  it("the scanner's TRACEW and ADC are used as they are when both are there; FLAIR by its inversion time", () => {
    expect(roles([t1(2), raw(5), tracew(6), adc(7), flair(9)])).toEqual({
      dwi: [6, 'scanner'],
      adc: [7, 'scanner'],
      flair: 9,
      notes: { 2: ['other', null], 5: ['diffusion', null], 6: ['trace', 'dwi'], 7: ['adc', 'adc'], 9: ['flair', 'flair'] },
    });
  });

  it('a diffusion series alone gives the computed trace and ADC; the latest of several', () => {
    expect(roles([raw(3), raw(8), t1(2)])).toMatchObject({ dwi: [8, 'computed'], adc: [8, 'computed'], flair: null });
  });

  it("a scanner's trace without an ADC: the ADC is computed from the diffusion series on its grid", () => {
    expect(roles([raw(5), tracew(6)])).toMatchObject({ dwi: [6, 'scanner'], adc: [5, 'computed'] });
  });

  it('an incomplete series is not chosen; if it was the only one, the refusal names it and what else was found', () => {
    expect(roles([raw(5, 'series 5 is missing images'), raw(6)])).toMatchObject({ dwi: [6, 'computed'] });
    const message = refusal(() => chooseRoles([raw(5, 'series 5 (ep2d_diff_3scan) is missing images: …'), t1(2)], {}));
    expect(message).toMatch(
      /^No DWI in the study: no usable diffusion or trace series\. Found 2 series — series 5 \(ep2d_diff_3scan\): series 5 \(ep2d_diff_3scan\) is missing images: …; series 2 \(t1_mprage\): not a diffusion, trace, ADC or FLAIR series/,
    );
  });

  it('no DWI at all: 422 naming what was found', () => {
    expect(refusal(() => chooseRoles([t1(2), flair(3)], {}))).toMatch(
      /No DWI in the study.*series 2 \(t1_mprage\).*series 3 \(t2_tirm_tra_dark-fluid\): FLAIR: inversion recovery, TI 2\.50 s, TE 90 ms/,
    );
    expect(refusal(() => chooseRoles([tracew(6)], {}))).toMatch(/^No ADC for the DWI \(series 6/);
  });

  it('the caller picks: by number or UID, computed ADC, no FLAIR; a wrong pick is refused with why', () => {
    expect(roles([raw(5), tracew(6), adc(7), flair(9)], { dwi: '1.2.3.5', adc: 'computed', flair: 'none' })).toMatchObject({
      dwi: [5, 'computed'],
      adc: [5, 'computed'],
      flair: null,
    });
    expect(refusal(() => chooseRoles([raw(5), t1(2)], { dwi: '2' }))).toMatch(/series 2 \(t1_mprage\), is not a diffusion or trace series/);
    expect(refusal(() => chooseRoles([raw(5), t1(2)], { adc: '2' }))).toMatch(/is not an ADC map/);
    expect(refusal(() => chooseRoles([raw(5)], { flair: '5' }))).toMatch(/is a diffusion series/);
  });

  it('the sidecar is read through an allowlist: the institution and the device never leave it', () => {
    const facts = sidecarFacts({
      ImageType: ['ORIGINAL'],
      InstitutionName: 'Queens Medical Centre',
      DeviceSerialNumber: '45190',
      EchoTime: 0.07,
    });
    expect(facts).toEqual({ ImageType: ['ORIGINAL'], EchoTime: 0.07 });
  });

  it('diffusion-weighted without b ≈ 0 is not a diffusion series', () => {
    const o = raw(5).outputs[0]!;
    expect(classifyOutput({ description: 'x', imageType: [] }, { ...o, bValues: [1000, 1000, 1000] }).kind).toBe('other');
  });
});
