import { describe, expect, it } from 'vitest';
import { adcMap, diffusionShells, geometricMeanOf, headMask, otsuThreshold, traceAndAdc } from './compute.js';

// The trace and ADC arithmetic on phantoms with a known answer.

const dims = [24, 24, 8] as const;
const n = dims[0] * dims[1] * dims[2];
const at = (x: number, y: number, z: number) => (z * dims[1] + y) * dims[0] + x;

/** A "head": a cylinder of tissue (ADC 800) with a CSF core (ADC 3000), air around; b0 = 1000. */
function phantom(bValues: number[], anisotropy = 0) {
  const adcTrue = new Float32Array(n);
  for (let z = 0; z < dims[2]; z++)
    for (let y = 0; y < dims[1]; y++)
      for (let x = 0; x < dims[0]; x++) {
        const r = Math.hypot(x - 11.5, y - 11.5);
        if (r < 9) adcTrue[at(x, y, z)] = r < 3 ? 3000e-6 : 800e-6;
      }
  // Direction images: the diffusivity along each direction differs (anisotropy), their mean is the ADC.
  let dir = 0;
  const frames = bValues.map((b) => {
    const f = new Float32Array(n);
    const tilt = b > 50 ? [1 + anisotropy, 1 - anisotropy, 1][dir++ % 3]! : 1;
    for (let i = 0; i < n; i++) f[i] = adcTrue[i]! > 0 ? 1000 * Math.exp(-b * adcTrue[i]! * tilt) : 0;
    return f;
  });
  return { frames, adcTrue };
}

describe('diffusion shells', () => {
  it('b ≈ 0 (Philips stores 0.001 … 0.004) and the highest shell within 10 %', () => {
    expect(diffusionShells([0, 1000, 1000, 1000, 0.001, 1000, 995, 0.004])).toEqual({ b0: [0, 4, 7], high: [1, 2, 3, 5, 6], b: 999 });
    expect(diffusionShells([0, 500, 1000, 1000])).toMatchObject({ high: [2, 3], b: 1000 });
    expect(diffusionShells([1000, 1000])).toBeNull(); // no b0
    expect(diffusionShells([0, 0, 100])).toBeNull(); // no diffusion weighting worth an ADC
  });
});

describe('trace and ADC', () => {
  it('recover the known ADC in 10⁻⁶ mm²/s inside the head, 0 outside, whatever the directions do', () => {
    const b = [0, 1000, 1000, 1000, 0];
    const { frames, adcTrue } = phantom(b, 0.3);
    const { adc, trace, mask } = traceAndAdc(frames, b, dims);
    for (let i = 0; i < n; i++) {
      if (adcTrue[i]! > 0) {
        expect(mask[i]).toBe(1);
        // The geometric mean of the three directions is exp(-b·ADC): the trace has no anisotropy left.
        expect(adc[i]).toBeCloseTo(adcTrue[i]! * 1e6, 0);
        expect(trace[i]).toBeCloseTo(1000 * Math.exp(-1000 * adcTrue[i]!), 1);
      } else {
        expect(adc[i]).toBe(0);
      }
    }
    expect(mask[at(0, 0, 0)]).toBe(0);
  });

  it('is finite and ≥ 0 everywhere: no signal → 0, S_b > S_b0 (noise) → 0', () => {
    const s0 = Float32Array.from([1000, 0, 1000, 1000, -5, 1e-30]);
    const sb = Float32Array.from([500, 100, 0, 1200, 10, 1e-30]);
    const adc = adcMap(s0, sb, 1000, new Uint8Array(6).fill(1));
    expect(adc[0]).toBeCloseTo(Math.log(2) * 1000, 3);
    expect([...adc.slice(1)]).toEqual([0, 0, 0, 0, 0]);
    expect(adcMap(s0, sb, 1000, new Uint8Array(6))[0]).toBe(0);
  });

  it('the geometric mean is 0 where any direction has no signal', () => {
    const g = geometricMeanOf([Float32Array.from([4, 2]), Float32Array.from([1, 0])], [0, 1]);
    expect([...g]).toEqual([2, 0]);
  });
});

describe('head mask', () => {
  it("Otsu's threshold splits two populations", () => {
    const v = Float32Array.from([...Array(100).fill(10), ...Array(100).fill(500)]);
    const t = otsuThreshold(v);
    expect(t).toBeGreaterThan(10);
    expect(t).toBeLessThan(500);
  });

  it('keeps the largest blob, drops a speck outside, and fills a dark hole inside', () => {
    const s0 = new Float32Array(n);
    for (let z = 0; z < dims[2]; z++)
      for (let y = 0; y < dims[1]; y++)
        for (let x = 0; x < dims[0]; x++) {
          const r = Math.hypot(x - 11.5, y - 11.5);
          if (r < 9 && r > 2.5) s0[at(x, y, z)] = 1000; // a ring: the middle is dark (a sinus)
        }
    for (let z = 2; z < 5; z++) s0[at(1, 1, z)] = 1000; // a ghost speck in the air
    const mask = headMask(s0, dims);
    expect(mask[at(11, 11, 4)]).toBe(1);
    expect(mask[at(1, 1, 3)]).toBe(0);
    expect(mask[at(0, 12, 4)]).toBe(0);
  });
});
