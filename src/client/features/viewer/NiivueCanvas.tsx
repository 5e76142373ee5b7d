import { NVImage, Niivue, SHOW_RENDER, SLICE_TYPE } from '@niivue/niivue';
import { useEffect, useRef, useState } from 'react';
import type { Lesion } from '../../../shared/lesions.js';
import { OUTLINE_COLOUR, STATUS_COLOURS, component26, ringAround, statusLabels } from '../lesions/components.js';
import { type RasOrder, type Vec3, nativeToRas, rasToNative, rasToNativeLut } from './grid.js';
import { releaseCanvas } from './webgl.js';

export interface ViewerVolume {
  /** Stable key, one per layer: 'background' | 'truth' | 'prediction' | 'version' (a saved corrected mask). */
  key: string;
  url: string;
  /** With the extension: a signed URL has none, and NiiVue would guess the format. */
  name: string;
  colormap: string;
  opacity: number;
  visible: boolean;
  /** On the case's DWI grid (DWI, ADC and every mask are): voxels the lesion lists and refine use are read from it. */
  dwiGrid?: boolean;
}

export type Layout = 'multiplanar' | 'axial' | 'render';

/** Drawing on the background (DWI) grid with NiiVue's tools, for corrected masks. */
export interface DrawingControls {
  /** Starts editing: from a saved mask or prediction (its URL), or from an empty mask. */
  start(fromUrl: string | null): Promise<void>;
  pen(opts: { size: number; filled: boolean; erase: boolean }): void;
  /** The pen draws; with 'click' a click on the images draws nothing (it is a prompt, see `onVoxelClick`). */
  tool(kind: 'pen' | 'click'): void;
  /** The drawing's grid (the background's native dims). */
  dims(): Vec3;
  /** The drawing as 0/1 voxels in the background's native order (i fastest). */
  read(): Uint8Array;
  /** Replaces the drawing with these 0/1 voxels (native order). */
  write(mask: Uint8Array): void;
  /** The drawing as a gzipped NIfTI-1 uint8 file on the background's grid. */
  save(): Promise<Uint8Array>;
  stop(): void;
}

/** Moves the crosshair, in every view, to a voxel of the DWI grid. */
export interface Navigator {
  goToVoxel(v: readonly number[]): void;
}

/** The lesion-status layer: the mask layer `sourceKey` recoloured by its lesions' TP/FP (and the missed true lesions, FN, from 'truth'). */
export interface StatusLayer {
  sourceKey: string;
  lesions: readonly Lesion[];
  opacity: number;
}

const STATUS_NAME = 'lesion-status.nii';
const OUTLINE_NAME = 'lesion-outline.nii';
/** Layers this component adds itself: not in the readout. */
const OWN_LAYERS = new Set([STATUS_NAME, OUTLINE_NAME]);

/** The selected lesion's outline: a ring around its component in the layer `sourceKey` (an FN's in 'truth'). */
export interface OutlineLayer {
  sourceKey: string;
  lesion: Lesion;
}

/** A label volume on `like`'s grid, label i coloured colours[i - 1], ready to add above the others. */
async function labelLayer(like: NVImage, labels: Uint8Array, name: string, colours: [number, number, number][], opacity: number) {
  const hdr = like.hdr!;
  const dims: Vec3 = [hdr.dims[1]!, hdr.dims[2]!, hdr.dims[3]!];
  const affine = hdr.affine.flatMap((row) => Array.from(row));
  const bytes = NVImage.createNiftiArray(dims, [hdr.pixDims[1]!, hdr.pixDims[2]!, hdr.pixDims[3]!], affine, undefined, labels);
  const image = await NVImage.loadFromUrl({ url: bytes, name });
  image.setColormapLabel({
    R: [0, ...colours.map((x) => x[0])],
    G: [0, ...colours.map((x) => x[1])],
    B: [0, ...colours.map((x) => x[2])],
    A: [0, ...colours.map(() => 255)],
    I: [0, ...colours.map((_, i) => i + 1)],
    labels: ['', ...colours.map((_, i) => String(i + 1))],
  });
  image.opacity = opacity;
  return image;
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([new Uint8Array(bytes)]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export interface Readout {
  mm: number[];
  /** The background's voxel, in the file's native order. */
  vox: number[];
  /** The voxel on the DWI grid (the lesion lists' and refine's), when a layer on it is loaded. */
  gridVox: Vec3 | null;
  values: { name: string; value: number }[];
}

const orderOf = (v: NVImage): RasOrder => ({ dims: [v.hdr!.dims[1]!, v.hdr!.dims[2]!, v.hdr!.dims[3]!], permRAS: v.permRAS! });
const binary = (img: ArrayLike<number>) => {
  const out = new Uint8Array(img.length);
  for (let i = 0; i < img.length; i++) out[i] = img[i]! > 0.5 ? 1 : 0;
  return out;
};

const SLICE: Record<Layout, SLICE_TYPE> = { multiplanar: SLICE_TYPE.MULTIPLANAR, axial: SLICE_TYPE.AXIAL, render: SLICE_TYPE.RENDER };

/**
 * NiiVue on a canvas made for this mount and released on unmount (a canvas reused across React's
 * StrictMode double mount fails with "Shader failed to link"). Volumes reload when their URLs
 * change; visibility, opacity and layout apply without a reload.
 */
export default function NiivueCanvas(props: {
  volumes: ViewerVolume[];
  layout: Layout;
  /** The crosshair's lines are drawn (default); hidden, what lies under them shows. */
  crosshair?: boolean;
  onLocation?: (r: Readout) => void;
  onLoaded?: () => void;
  /** Receives the drawing controls once NiiVue is attached (null when it goes). */
  onDrawing?: (controls: DrawingControls | null) => void;
  /** Called after each stroke while drawing. */
  onEdit?: () => void;
  /** Receives the crosshair mover once NiiVue is attached (null when it goes). */
  onNavigator?: (nav: Navigator | null) => void;
  /** A left click (not a drag) on a 2D slice, as the DWI-grid voxel under the pointer. */
  onVoxelClick?: (v: Vec3, shift: boolean) => void;
  status?: StatusLayer | null;
  outline?: OutlineLayer | null;
}) {
  const holder = useRef<HTMLDivElement>(null);
  const nvRef = useRef<Niivue | null>(null);
  const [loadedKeys, setLoadedKeys] = useState<string[]>([]);
  const loadedRef = useRef<string[]>([]);
  loadedRef.current = loadedKeys;
  const [error, setError] = useState<string | null>(null);
  const loading = useRef<Promise<unknown>>(Promise.resolve());
  const urls = props.volumes.map((v) => `${v.key}|${v.url}|${v.colormap}`).join(',');
  const latest = useRef(props);
  latest.current = props;

  useEffect(() => {
    const canvas = document.createElement('canvas');
    canvas.setAttribute('data-testid', 'niivue-canvas');
    holder.current!.appendChild(canvas);
    const nv = new Niivue({
      backColor: [0, 0, 0, 1],
      // not red or green: the overlays are, and a test counts their pixels
      crosshairColor: [0.25, 0.55, 1, 1],
      multiplanarShowRender: SHOW_RENDER.ALWAYS,
      show3Dcrosshair: false,
      isResizeCanvas: true,
      loadingText: 'Loading volumes…',
    });
    nvRef.current = nv;
    let gone = false;
    // the first loaded layer on the DWI grid: voxels are read from it and crosshairs set through it
    const gridLayer = () => {
      const keys = loadedRef.current;
      const i = keys.findIndex((k) => latest.current.volumes.find((v) => v.key === k)?.dwiGrid);
      return i >= 0 && nv.volumes[i] ? i : -1;
    };
    const gridVoxAt = (frac: ArrayLike<number>): Vec3 | null => {
      const i = gridLayer();
      if (i < 0) return null;
      const vol = nv.volumes[i]!;
      const ras = i === 0 ? nv.frac2vox(frac as never) : vol.mm2vox(Array.from(nv.frac2mm(frac as never, 0, true)).slice(0, 3));
      return rasToNative(orderOf(vol), Array.from(ras));
    };
    nv.onLocationChange = (loc: unknown) => {
      const l = loc as {
        mm: ArrayLike<number>;
        vox: ArrayLike<number>;
        frac: ArrayLike<number>;
        values: { name: string; value: number }[];
      };
      latest.current.onLocation?.({
        mm: Array.from(l.mm).slice(0, 3),
        vox: nv.back ? rasToNative(orderOf(nv.back), Array.from(l.vox)) : Array.from(l.vox),
        gridVox: gridVoxAt(l.frac),
        values: l.values.filter((v) => !OWN_LAYERS.has(v.name)).map((v) => ({ name: v.name, value: v.value })),
      });
    };
    const navigator: Navigator = {
      goToVoxel(v) {
        const i = gridLayer();
        if (i < 0) return;
        const vol = nv.volumes[i]!;
        const ras = nativeToRas(orderOf(vol), v);
        // through millimetres when the background is on another grid (FLAIR)
        nv.scene.crosshairPos = i === 0 ? nv.vox2frac(ras) : nv.mm2frac(vol.convertFrac2MM(vol.convertVox2Frac(ras), true), 0, true);
        nv.createOnLocationChange();
        nv.drawScene();
      },
    };
    // the drawing lives in the background's RAS order; callers see native order
    let lut: Uint32Array | null = null;
    const drawingLut = () => (lut ??= rasToNativeLut(orderOf(nv.back!)));
    const controls: DrawingControls = {
      async start(fromUrl) {
        if (fromUrl) {
          const image = await NVImage.loadFromUrl({ url: fromUrl, name: 'mask.nii.gz' });
          nv.loadDrawing(image);
        } else {
          nv.createEmptyDrawing();
        }
        lut = null;
        // ITK-SNAP's label colours: label 1 (the pen) is red. NiiVue 0.69 has no '_draw' map; an
        // unknown name falls back to a grey ramp that drew label 1 almost black.
        nv.setDrawColormap('$itksnap');
        nv.setDrawingEnabled(true);
        nv.setPenValue(1, false);
      },
      pen({ size, filled, erase }) {
        nv.opts.penSize = size;
        nv.setPenValue(erase ? 0 : 1, filled);
      },
      tool(kind) {
        nv.setDrawingEnabled(kind === 'pen');
      },
      dims: () => orderOf(nv.back!).dims,
      read() {
        const bitmap = nv.drawBitmap!;
        const map = drawingLut();
        const out = new Uint8Array(bitmap.length);
        for (let r = 0; r < bitmap.length; r++) out[map[r]!] = bitmap[r]! > 0 ? 1 : 0;
        return out;
      },
      write(mask) {
        const bitmap = nv.drawBitmap!;
        const map = drawingLut();
        for (let r = 0; r < bitmap.length; r++) bitmap[r] = mask[map[r]!]!;
        nv.refreshDrawing(true);
      },
      async save() {
        const raw = await nv.saveImage({ filename: '', isSaveDrawing: true, volumeByIndex: 0 });
        if (!(raw instanceof Uint8Array)) throw new Error('NiiVue returned no drawing');
        return gzip(raw);
      },
      stop() {
        nv.setDrawingEnabled(false);
        nv.closeDrawing();
      },
    };
    nv.onDrawingChanged = (action: string) => {
      if (action === 'draw') latest.current.onEdit?.();
    };
    // a click, not a drag: pressed and released within a few pixels, with the left button
    let down: { x: number; y: number } | null = null;
    const press = (e: PointerEvent) => {
      down = e.button === 0 ? { x: e.clientX, y: e.clientY } : null;
    };
    const release = (e: PointerEvent) => {
      if (!down || e.button !== 0 || Math.hypot(e.clientX - down.x, e.clientY - down.y) > 4) return;
      down = null;
      const rect = canvas.getBoundingClientRect();
      const dpr = nv.uiData.dpr ?? 1;
      const frac = nv.canvasPos2frac([(e.clientX - rect.left) * dpr, (e.clientY - rect.top) * dpr]);
      if (!(frac[0]! >= 0)) return; // the 3D render, or outside every slice
      const v = gridVoxAt(frac);
      if (v) latest.current.onVoxelClick?.(v, e.shiftKey);
    };
    canvas.addEventListener('pointerdown', press);
    canvas.addEventListener('pointerup', release);
    void nv
      .attachToCanvas(canvas)
      .then(() => {
        if (gone) return;
        latest.current.onDrawing?.(controls);
        latest.current.onNavigator?.(navigator);
      })
      .catch((e: unknown) => !gone && setError(String((e as Error).message ?? e)));
    return () => {
      gone = true;
      canvas.removeEventListener('pointerdown', press);
      canvas.removeEventListener('pointerup', release);
      latest.current.onDrawing?.(null);
      latest.current.onNavigator?.(null);
      nvRef.current = null;
      try {
        nv.cleanup();
      } catch {
        // already torn down
      }
      releaseCanvas(canvas);
    };
  }, []);

  useEffect(() => {
    const nv = nvRef.current;
    if (!nv) return;
    let stale = false;
    const vols = latest.current.volumes;
    setLoadedKeys([]);
    // one load at a time: two of NiiVue's loadVolumes in flight interleave their volumes (a quick
    // change of URLs showed dwi, truth, dwi, truth, prediction), and the layers' indices are wrong
    const load = async () => {
      // wait for attachToCanvas (it resolves on the next frames)
      while (!nv.gl && !stale) await new Promise((r) => setTimeout(r, 20));
      if (stale) return;
      // NiiVue 0.69 computes the 3D render's gradients as volumes load; with only a 2D slice on
      // screen that fails ("blur shader: 36061"). A reload in another layout goes through the
      // multiplanar view (the chosen layout comes back once the volumes are in). Not before the
      // first load: with no volume yet, switching itself fails the same way.
      if (nv.volumes.length > 0 && latest.current.layout !== 'multiplanar') nv.setSliceType(SLICE_TYPE.MULTIPLANAR);
      await nv.loadVolumes(vols.map((v) => ({ url: v.url, name: v.name, colormap: v.colormap, opacity: v.visible ? v.opacity : 0 })));
      if (stale) return;
      for (const [i, v] of vols.entries()) {
        if (v.key !== 'background') {
          // masks: 0 transparent, 1 full colour
          nv.volumes[i]!.cal_min = 0;
          nv.volumes[i]!.cal_max = 1;
        }
      }
      nv.updateGLVolume();
      setLoadedKeys(vols.map((v) => v.key));
      latest.current.onLoaded?.();
    };
    loading.current = loading.current
      .then(load)
      .catch((e: unknown) => !stale && setError(`Could not load the volumes: ${(e as Error).message ?? e}`));
    return () => {
      stale = true;
    };
  }, [urls]);

  useEffect(() => {
    const nv = nvRef.current;
    if (!nv || loadedKeys.length === 0) return;
    for (const v of props.volumes) {
      const i = loadedKeys.indexOf(v.key);
      if (i >= 0 && nv.volumes[i]) nv.setOpacity(i, v.visible ? v.opacity : 0);
    }
    // the 2D crosshair is NiiVue's 3D one seen edge-on, one voxel thick at width 1; at 0 it is not drawn
    const width = props.crosshair === false ? 0 : 1;
    if (nv.opts.crosshairWidth !== width) nv.setCrosshairWidth(width);
    nv.setSliceType(SLICE[props.layout]);
  });

  // The status layer: a label volume built here from the loaded mask and truth, added above them
  // (a reload of the volumes drops it; loadedKeys changing brings it back).
  const status = props.status ?? null;
  useEffect(() => {
    const nv = nvRef.current;
    if (!nv || !status || loadedKeys.length === 0) return;
    let stale = false;
    let added: NVImage | null = null;
    (async () => {
      const source = nv.volumes[loadedKeys.indexOf(status.sourceKey)];
      if (!source || loadedKeys.indexOf(status.sourceKey) < 0) return;
      const truthAt = loadedKeys.indexOf('truth');
      const truth = truthAt >= 0 ? nv.volumes[truthAt] : undefined;
      const hdr = source.hdr!;
      const dims: Vec3 = [hdr.dims[1]!, hdr.dims[2]!, hdr.dims[3]!];
      const labels = statusLabels(binary(source.img!), truth ? binary(truth.img!) : null, dims, status.lesions);
      // label i (1 TP, 2 FP, 3 FN) gets colour i
      const image = await labelLayer(
        source,
        labels,
        STATUS_NAME,
        [STATUS_COLOURS.TP, STATUS_COLOURS.FP, STATUS_COLOURS.FN],
        status.opacity,
      );
      if (stale) return;
      nv.addVolume(image);
      added = image;
    })().catch((e: unknown) => !stale && setError(`Could not colour the lesions: ${(e as Error).message ?? e}`));
    return () => {
      stale = true;
      if (added && nv.volumes.includes(added)) nv.removeVolume(added);
    };
  }, [loadedKeys, status?.sourceKey, status?.lesions, status?.opacity]);

  // The selected lesion's outline, added above everything (the status layer too)
  const outline = props.outline ?? null;
  useEffect(() => {
    const nv = nvRef.current;
    if (!nv || !outline || loadedKeys.length === 0) return;
    let stale = false;
    let added: NVImage | null = null;
    (async () => {
      const key = outline.lesion.status === 'FN' ? 'truth' : outline.sourceKey;
      const source = loadedKeys.indexOf(key) >= 0 ? nv.volumes[loadedKeys.indexOf(key)] : undefined;
      if (!source) return;
      const hdr = source.hdr!;
      const dims: Vec3 = [hdr.dims[1]!, hdr.dims[2]!, hdr.dims[3]!];
      const voxels = component26(binary(source.img!), dims, outline.lesion.seedVoxel);
      if (voxels.length === 0) return;
      const image = await labelLayer(source, ringAround(voxels, dims), OUTLINE_NAME, [OUTLINE_COLOUR], 1);
      if (stale) return;
      nv.addVolume(image);
      added = image;
    })().catch((e: unknown) => !stale && setError(`Could not outline the lesion: ${(e as Error).message ?? e}`));
    return () => {
      stale = true;
      if (added && nv.volumes.includes(added)) nv.removeVolume(added);
    };
  }, [loadedKeys, outline?.sourceKey, outline?.lesion]);

  return (
    <div className="viewer-holder" ref={holder} data-loaded={loadedKeys.join(',')}>
      {error && <p className="error">{error}</p>}
    </div>
  );
}
