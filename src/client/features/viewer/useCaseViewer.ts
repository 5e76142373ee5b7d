import { useEffect, useState } from 'react';
import type { VolumeRole } from '../../../shared/cases.js';
import type { JobView } from '../../../shared/jobs.js';
import type { MaskVersionView } from '../../../shared/masks.js';
import { setLeaveGuard } from '../../router.js';
import type { Layout, ViewerVolume } from './NiivueCanvas.js';

export type Overlay = { visible: boolean; opacity: number };

type CaseVolume = { role: VolumeRole; url: string };

/**
 * What the case view shows and how it changes: the background image, the layout, the overlays
 * (ground truth, the prediction shown, a saved version), and mask editing with its unsaved state.
 * `latest` (the case's newest finished job) is shown until the user picks or runs another.
 */
export function useCaseViewer(latest: JobView | null) {
  const [background, setBackground] = useState<VolumeRole>('dwi');
  const [layout, setLayout] = useState<Layout>('multiplanar');
  const [crosshair, setCrosshair] = useState(true);
  const [truth, setTruth] = useState<Overlay>({ visible: true, opacity: 0.5 });
  const [pred, setPred] = useState<Overlay>({ visible: true, opacity: 0.6 });
  const [versionOverlay, setVersionOverlay] = useState<Overlay>({ visible: true, opacity: 0.7 });
  const [picked, setResult] = useState<JobView | null>(null);
  const [shownVersion, setShownVersion] = useState<string | null>(null);
  const [editing, setEditing] = useState(false);
  const [dirty, setDirty] = useState(false);
  return {
    background,
    setBackground,
    layout,
    setLayout,
    /** The crosshair's lines are drawn (hidden, a one-voxel lesion under them shows). */
    crosshair,
    setCrosshair,
    truth,
    setTruth,
    pred,
    setPred,
    versionOverlay,
    setVersionOverlay,
    /** The job whose prediction is shown. */
    result: picked ?? latest,
    setResult,
    shownVersion,
    setShownVersion,
    editing,
    dirty,
    /** Starting or stopping an edit starts from a clean slate. */
    setEditing: (on: boolean) => {
      setEditing(on);
      setDirty(false);
    },
    edited: () => setDirty(true),
    /** A saved correction is shown at once, as the new version. */
    saved: (v: MaskVersionView) => {
      setDirty(false);
      setShownVersion(v.id);
    },
  };
}

export type CaseViewer = ReturnType<typeof useCaseViewer>;

/** The background image: the one picked, except while editing — the drawing lives on the DWI grid. */
export function shownBackground<V extends CaseVolume>(volumes: V[], v: Pick<CaseViewer, 'editing' | 'background'>): V {
  const vol = (role: VolumeRole) => volumes.find((x) => x.role === role);
  return (v.editing ? vol('dwi') : vol(v.background)) ?? vol('dwi')!;
}

/** The volumes NiiVue draws, bottom to top. */
export function viewerVolumes(volumes: CaseVolume[], v: CaseViewer, versions: MaskVersionView[]): ViewerVolume[] {
  const vol = (role: VolumeRole) => volumes.find((x) => x.role === role);
  const bg = shownBackground(volumes, v);
  // DWI and ADC share a grid (the server checks it at import), and every mask is on it
  const out: ViewerVolume[] = [
    {
      key: 'background',
      url: bg.url,
      name: `${bg.role}.nii.gz`,
      colormap: 'gray',
      opacity: 1,
      visible: true,
      dwiGrid: bg.role !== 'flair',
    },
  ];
  const gt = vol('mask');
  if (gt) out.push({ key: 'truth', url: gt.url, name: 'truth.nii.gz', colormap: 'green', dwiGrid: true, ...v.truth });
  if (v.result?.result)
    out.push({ key: 'prediction', url: v.result.result.mask.url, name: 'prediction.nii.gz', colormap: 'red', dwiGrid: true, ...v.pred });
  const version = versions.find((x) => x.id === v.shownVersion);
  if (version)
    out.push({ key: 'version', url: version.volume.url, name: 'corrected.nii.gz', colormap: 'blue', dwiGrid: true, ...v.versionOverlay });
  return out;
}

/** A warning before leaving with unsaved edits: closing the tab, reloading, or navigating in the app. */
export function useLeaveGuard(dirty: boolean) {
  useEffect(() => {
    if (!dirty) return;
    const warn = (e: BeforeUnloadEvent) => {
      e.preventDefault();
      e.returnValue = '';
    };
    window.addEventListener('beforeunload', warn);
    setLeaveGuard(() => confirm('You have unsaved edits to the mask. Leave without saving?'));
    return () => {
      window.removeEventListener('beforeunload', warn);
      setLeaveGuard(null);
    };
  }, [dirty]);
}
