import { NVImage, Niivue, SHOW_RENDER, SLICE_TYPE } from '@niivue/niivue';
import { useEffect, useRef, useState } from 'react';
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
}

export type Layout = 'multiplanar' | 'axial' | 'render';

/** Drawing on the background (DWI) grid with NiiVue's tools, for corrected masks. */
export interface DrawingControls {
  /** Starts editing: from a saved mask or prediction (its URL), or from an empty mask. */
  start(fromUrl: string | null): Promise<void>;
  pen(opts: { size: number; filled: boolean; erase: boolean }): void;
  undo(): void;
  /** The drawing as a gzipped NIfTI-1 uint8 file on the background's grid. */
  save(): Promise<Uint8Array>;
  stop(): void;
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([new Uint8Array(bytes)]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export interface Readout {
  mm: number[];
  vox: number[];
  values: { name: string; value: number }[];
}

const SLICE: Record<Layout, SLICE_TYPE> = { multiplanar: SLICE_TYPE.MULTIPLANAR, axial: SLICE_TYPE.AXIAL, render: SLICE_TYPE.RENDER };

/**
 * NiiVue on a canvas made for this mount and released on unmount (a canvas reused across React's
 * StrictMode double mount fails with "Shader failed to link"). Volumes reload when their URLs
 * change; visibility, opacity and layout apply without a reload.
 */
export default function NiivueCanvas(props: {
  volumes: ViewerVolume[];
  layout: Layout;
  onLocation?: (r: Readout) => void;
  onLoaded?: () => void;
  /** Receives the drawing controls once NiiVue is attached (null when it goes). */
  onDrawing?: (controls: DrawingControls | null) => void;
  /** Called after each stroke while drawing. */
  onEdit?: () => void;
}) {
  const holder = useRef<HTMLDivElement>(null);
  const nvRef = useRef<Niivue | null>(null);
  const [loadedKeys, setLoadedKeys] = useState<string[]>([]);
  const [error, setError] = useState<string | null>(null);
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
    nv.onLocationChange = (loc: unknown) => {
      const l = loc as { mm: ArrayLike<number>; vox: ArrayLike<number>; values: { name: string; value: number }[] };
      latest.current.onLocation?.({
        mm: Array.from(l.mm).slice(0, 3),
        vox: Array.from(l.vox),
        values: l.values.map((v) => ({ name: v.name, value: v.value })),
      });
    };
    const controls: DrawingControls = {
      async start(fromUrl) {
        if (fromUrl) {
          const image = await NVImage.loadFromUrl({ url: fromUrl, name: 'mask.nii.gz' });
          nv.loadDrawing(image);
        } else {
          nv.createEmptyDrawing();
        }
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
      undo: () => nv.drawUndo(),
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
    const stroke = () => {
      if (nv.opts.drawingEnabled) latest.current.onEdit?.();
    };
    canvas.addEventListener('pointerup', stroke);
    void nv
      .attachToCanvas(canvas)
      .then(() => !gone && latest.current.onDrawing?.(controls))
      .catch((e: unknown) => !gone && setError(String((e as Error).message ?? e)));
    return () => {
      gone = true;
      canvas.removeEventListener('pointerup', stroke);
      latest.current.onDrawing?.(null);
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
    (async () => {
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
    })().catch((e: unknown) => !stale && setError(`Could not load the volumes: ${(e as Error).message ?? e}`));
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
    nv.setSliceType(SLICE[props.layout]);
  });

  return (
    <div className="viewer-holder" ref={holder} data-loaded={loadedKeys.join(',')}>
      {error && <p className="error">{error}</p>}
    </div>
  );
}
