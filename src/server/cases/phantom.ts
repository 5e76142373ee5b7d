import type { Affine } from '../../shared/nifti.js';

/**
 * Seeded digital phantoms shaped like ISLES'22 cases: 112×112×73 voxels at 2 mm, float32 DWI
 * (b1000), ADC in 10⁻⁶ mm²/s, FLAIR, and a uint8 ground-truth lesion mask. A head (scalp), a
 * brain with grey/white contrast, sulcal CSF and ventricles, and 1–3 acute lesions of varied
 * shape and size (some under 1 mL, some cortical) with restricted diffusion (ADC 400–550,
 * hyperintense DWI). Rician-like noise and a smooth bias field on the magnitude images.
 * Deterministic per seed: the same seed always gives the same bytes.
 */

export const PHANTOM_DIMS: [number, number, number] = [112, 112, 73];
export const PHANTOM_VOXEL_MM = 2;

export interface Phantom {
  seed: number;
  dims: [number, number, number];
  affine: Affine;
  dwi: Float32Array;
  adc: Float32Array;
  flair: Float32Array;
  mask: Uint8Array;
  lesions: { centre: [number, number, number]; voxels: number; ml: number; cortical: boolean }[];
}

/** mulberry32: a small, fast, seedable PRNG (uniform in [0, 1)). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rand: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = rand();
    const v = rand();
    const m = Math.sqrt(-2 * Math.log(u));
    spare = m * Math.sin(2 * Math.PI * v);
    return m * Math.cos(2 * Math.PI * v);
  };
}

/** A smooth random field in about [-1, 1]: a few low-frequency waves with random phases. */
function smoothField(rand: () => number, waves = 4, maxFreq = 2.5) {
  const terms = Array.from({ length: waves }, () => ({
    fx: (rand() * 2 - 1) * maxFreq,
    fy: (rand() * 2 - 1) * maxFreq,
    fz: (rand() * 2 - 1) * maxFreq,
    phase: rand() * Math.PI * 2,
  }));
  return (u: number, v: number, w: number) => {
    let s = 0;
    for (const t of terms) s += Math.sin(t.fx * u + t.fy * v + t.fz * w + t.phase);
    return s / waves;
  };
}

/** Math.hypot is several times slower in V8 and this runs for every voxel. */
function hyp(a: number, b: number, c = 0): number {
  return Math.sqrt(a * a + b * b + c * c);
}

export function phantomAffine(dims = PHANTOM_DIMS, mm = PHANTOM_VOXEL_MM): Affine {
  return [
    [mm, 0, 0, (-(dims[0] - 1) / 2) * mm],
    [0, mm, 0, (-(dims[1] - 1) / 2) * mm],
    [0, 0, mm, (-(dims[2] - 1) / 2) * mm],
    [0, 0, 0, 1],
  ];
}

export function generatePhantom(seed: number): Phantom {
  const rand = rng(seed * 7919 + 17);
  const gauss = gaussian(rand);
  const [nx, ny, nz] = PHANTOM_DIMS;
  const n = nx * ny * nz;
  const cx = (nx - 1) / 2;
  const cy = (ny - 1) / 2 + (rand() - 0.5) * 4;
  const cz = (nz - 1) / 2 + (rand() - 0.5) * 3;
  // Head and brain ellipsoid radii in voxels, varied a little per subject.
  const scale = 0.93 + rand() * 0.1;
  const head = [48 * scale, 53 * scale, 33 * scale];
  const brain = [head[0]! - 5, head[1]! - 5, head[2]! - 4.5];
  const fold = smoothField(rand, 6, 9); // sulcal pattern
  const greyWhite = smoothField(rand, 5, 6);
  const bias = smoothField(rand, 3, 1.5);

  // Lesions: unions of 1–4 spheres inside the parenchyma, varied in size and place.
  const lesionCount = 1 + Math.floor(rand() * 3);
  const lesions = Array.from({ length: lesionCount }, (_, li) => {
    const cortical = rand() < 0.4;
    const small = li > 0 && rand() < 0.5;
    const radius = small ? 1.6 + rand() * 1.2 : 3 + rand() * 4.5;
    let centre: [number, number, number];
    for (;;) {
      const theta = rand() * Math.PI * 2;
      const phi = Math.acos(rand() * 2 - 1);
      const r = cortical ? 0.74 + rand() * 0.1 : 0.3 + rand() * 0.4;
      centre = [
        cx + brain[0]! * r * Math.sin(phi) * Math.cos(theta),
        cy + brain[1]! * r * Math.sin(phi) * Math.sin(theta),
        cz + brain[2]! * r * Math.cos(phi) * 0.8,
      ];
      // keep clear of the ventricles
      if (Math.abs(centre[0] - cx) > 10 || Math.abs(centre[2] - cz) > 8) break;
    }
    const blobs = Array.from({ length: 1 + Math.floor(rand() * 3) }, (_, bi) => ({
      c: bi === 0 ? centre : (centre.map((x) => x + (rand() - 0.5) * radius * 1.4) as [number, number, number]),
      r: bi === 0 ? radius : radius * (0.5 + rand() * 0.4),
      stretch: [0.7 + rand() * 0.6, 0.7 + rand() * 0.6, 0.6 + rand() * 0.5],
    }));
    return {
      centre,
      cortical,
      blobs,
      adc: 400 + rand() * 150,
      dwi: 1150 + rand() * 350,
      flair: 600 + rand() * 120,
    };
  });

  const dwi = new Float32Array(n);
  const adc = new Float32Array(n);
  const flair = new Float32Array(n);
  const mask = new Uint8Array(n);
  const lesionVoxels = lesions.map(() => 0);

  for (let z = 0, i = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        const u = (x - cx) / nx;
        const v = (y - cy) / ny;
        const w = (z - cz) / nz;
        const rHead = hyp((x - cx) / head[0]!, (y - cy) / head[1]!, (z - cz) / head[2]!);
        const rBrain = hyp((x - cx) / brain[0]!, (y - cy) / brain[1]!, (z - cz) / brain[2]!);
        let tissue: 'air' | 'scalp' | 'csf' | 'grey' | 'white' = 'air';
        if (rHead <= 1) tissue = 'scalp';
        if (rBrain <= 1) {
          const sulcus = rBrain > 0.86 && fold(u * 3, v * 3, w * 3) > 0.35;
          const outerCsf = rBrain > 0.965;
          const ventricle =
            hyp((Math.abs(x - cx) - 5.5) / 3.2, (y - cy - 3) / 11, (z - cz - 2) / 5.5) <= 1 ||
            hyp((x - cx) / 2, (y - cy + 12) / 3, (z - cz - 3) / 3) <= 1;
          if (outerCsf || sulcus || ventricle) tissue = 'csf';
          else tissue = rBrain > 0.78 || greyWhite(u * 2, v * 2, w * 2) > 0.55 ? 'grey' : 'white';
        }
        let lesion = -1;
        if (tissue === 'grey' || tissue === 'white') {
          for (let li = 0; li < lesions.length && lesion < 0; li++) {
            for (const b of lesions[li]!.blobs) {
              const d = hyp(
                (x - b.c[0]) / (b.r * b.stretch[0]!),
                (y - b.c[1]) / (b.r * b.stretch[1]!),
                (z - b.c[2]) / (b.r * b.stretch[2]!),
              );
              if (d <= 1) {
                lesion = li;
                break;
              }
            }
          }
        }
        let sDwi = 0;
        let sAdc = 0;
        let sFlair = 0;
        switch (tissue) {
          case 'air':
            break;
          case 'scalp':
            sDwi = 260;
            sAdc = 1100;
            sFlair = 650;
            break;
          case 'csf':
            sDwi = 140;
            sAdc = 3000;
            sFlair = 90;
            break;
          case 'grey':
            sDwi = 640;
            sAdc = 860;
            sFlair = 520;
            break;
          case 'white':
            sDwi = 560;
            sAdc = 740;
            sFlair = 440;
            break;
        }
        if (lesion >= 0) {
          const l = lesions[lesion]!;
          sDwi = l.dwi;
          sAdc = l.adc;
          sFlair = l.flair;
          mask[i] = 1;
          lesionVoxels[lesion]!++;
        }
        const b = 1 + 0.15 * bias(u * 2, v * 2, w * 2);
        const sigma = 18;
        const re = sDwi * b + sigma * gauss();
        const im = sigma * gauss();
        dwi[i] = hyp(re, im);
        const reF = sFlair * b + sigma * gauss();
        const imF = sigma * gauss();
        flair[i] = hyp(reF, imF);
        adc[i] = tissue === 'air' ? Math.abs(8 * gauss()) : Math.max(0, sAdc + 35 * gauss());
      }
    }
  }
  const voxelMl = PHANTOM_VOXEL_MM ** 3 / 1000;
  return {
    seed,
    dims: PHANTOM_DIMS,
    affine: phantomAffine(),
    dwi,
    adc,
    flair,
    mask,
    lesions: lesions.map((l, li) => ({
      centre: l.centre.map((c) => Math.round(c * 10) / 10) as [number, number, number],
      voxels: lesionVoxels[li]!,
      ml: lesionVoxels[li]! * voxelMl,
      cortical: l.cortical,
    })),
  };
}
