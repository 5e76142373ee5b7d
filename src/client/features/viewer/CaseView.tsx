import { Suspense, lazy, useEffect, useMemo, useState } from 'react';
import type { VolumeRole } from '../../../shared/cases.js';
import type { JobView } from '../../../shared/jobs.js';
import { ADC_UNIT_LABELS } from '../../../shared/nifti.js';
import { ErrorBoundary } from '../../components/ErrorBoundary.js';
import { navigate, setLeaveGuard } from '../../router.js';
import { trpc } from '../../trpc.js';
import { JobHistory } from '../jobs/JobHistory.js';
import { JobPanel } from '../jobs/JobPanel.js';
import { EditPanel, VersionsPanel } from '../masks/EditPanel.js';
import type { DrawingControls, Layout, Readout, ViewerVolume } from './NiivueCanvas.js';
import { hasWebGL2 } from './webgl.js';

// NiiVue is most of the bundle: loaded only when a case is opened (main.tsx starts the download
// early when the page opens on a case).
export const loadNiivue = () => import('./NiivueCanvas.js');
const NiivueCanvas = lazy(loadNiivue);

type Overlay = { visible: boolean; opacity: number };

export function CaseView({ id }: { id: string }) {
  const detail = trpc.cases.byId.useQuery({ id });
  const me = trpc.auth.me.useQuery();
  const jobs = trpc.jobs.list.useQuery({ caseId: id }, { enabled: !!me.data && detail.isSuccess });
  const [background, setBackground] = useState<VolumeRole>('dwi');
  const [layout, setLayout] = useState<Layout>('multiplanar');
  const [truth, setTruth] = useState<Overlay>({ visible: true, opacity: 0.5 });
  const [pred, setPred] = useState<Overlay>({ visible: true, opacity: 0.6 });
  const [result, setResult] = useState<JobView | null>(null);
  const [readout, setReadout] = useState<Readout | null>(null);
  const [drawing, setDrawing] = useState<DrawingControls | null>(null);
  const [editing, setEditing] = useState(false);
  const [dirty, setDirty] = useState(false);
  const [shownVersion, setShownVersion] = useState<string | null>(null);
  const [versionOverlay, setVersionOverlay] = useState<Overlay>({ visible: true, opacity: 0.7 });
  const versions = trpc.masks.list.useQuery({ caseId: id }, { enabled: !!me.data && detail.isSuccess });
  const utils = trpc.useUtils();
  const remove = trpc.cases.delete.useMutation({
    onSuccess: async () => {
      await utils.cases.list.invalidate();
      navigate('/');
    },
  });
  const webgl = useMemo(hasWebGL2, []);

  // A warning before leaving with unsaved edits (closing the tab, reloading).
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

  // Reopening a case shows its latest finished result without running again.
  const latest = jobs.data?.items.find((j) => j.status === 'succeeded' && j.result) ?? null;
  // Start downloading the images while NiiVue itself loads and starts: its own fetch of the same
  // signed URLs then comes from the HTTP cache (volumes are served immutable).
  useEffect(() => {
    if (!detail.data) return;
    void loadNiivue();
    for (const v of detail.data.volumes)
      if (v.role === 'dwi' || v.role === 'mask')
        void fetch(v.url)
          .then((r) => r.arrayBuffer())
          .catch(() => {});
  }, [detail.data]);
  useEffect(() => {
    if (latest && !result) setResult(latest);
  }, [latest, result]);

  if (detail.isPending) return <p>Loading the case…</p>;
  if (detail.isError) {
    const code = detail.error.data?.code;
    return (
      <p className="error" role="alert">
        {code === 'NOT_FOUND' || code === 'BAD_REQUEST' ? 'Case not found' : detail.error.message}
      </p>
    );
  }
  const c = detail.data;
  const vol = (role: VolumeRole) => c.volumes.find((v) => v.role === role);
  // while editing, the drawing lives on the DWI grid: the background stays DWI
  const bg = (editing ? vol('dwi') : vol(background)) ?? vol('dwi')!;
  const volumes: ViewerVolume[] = [
    { key: 'background', url: bg.url, name: `${bg.role}.nii.gz`, colormap: 'gray', opacity: 1, visible: true },
  ];
  const gt = vol('mask');
  if (gt) volumes.push({ key: 'truth', url: gt.url, name: 'truth.nii.gz', colormap: 'green', ...truth });
  if (result?.result) volumes.push({ key: 'prediction', url: result.result.mask.url, name: 'prediction.nii.gz', colormap: 'red', ...pred });
  const version = versions.data?.items.find((v) => v.id === shownVersion);
  if (version) volumes.push({ key: 'version', url: version.volume.url, name: 'corrected.nii.gz', colormap: 'blue', ...versionOverlay });
  const adc = vol('adc');

  return (
    <div className="case-view">
      <div className="viewer-column">
        <div className="toolbar">
          <h1>{c.name}</h1>
          <label>
            Image
            <select value={bg.role} onChange={(e) => setBackground(e.target.value as VolumeRole)} aria-label="Background image">
              {(['dwi', 'adc', 'flair'] as const)
                .filter((r) => vol(r))
                .map((r) => (
                  <option key={r} value={r}>
                    {r.toUpperCase()}
                  </option>
                ))}
            </select>
          </label>
          <label>
            Layout
            <select value={layout} onChange={(e) => setLayout(e.target.value as Layout)} aria-label="Layout">
              <option value="multiplanar">Axial, coronal, sagittal + 3D</option>
              <option value="axial">Axial</option>
              <option value="render">3D</option>
            </select>
          </label>
        </div>
        {webgl ? (
          <ErrorBoundary>
            <Suspense fallback={<p>Loading the viewer…</p>}>
              <NiivueCanvas
                volumes={volumes}
                layout={layout}
                onLocation={setReadout}
                onDrawing={setDrawing}
                onEdit={() => setDirty(true)}
              />
            </Suspense>
          </ErrorBoundary>
        ) : (
          <p className="error" role="alert">
            This browser cannot show the images: WebGL2 is not available (it may be turned off, or the graphics driver is blocked). Try
            another browser or enable hardware acceleration.
          </p>
        )}
        <p className="readout" data-testid="readout">
          {readout
            ? `${readout.mm.map((x) => x.toFixed(1)).join(', ')} mm · voxel ${readout.vox.join(', ')} · ${readout.values.map((v) => `${v.name}: ${Number.isInteger(v.value) ? v.value : v.value.toFixed(3)}`).join(' · ')}`
            : 'Click the images to read values.'}
        </p>
      </div>
      <aside>
        <div className="panel">
          <h2>Overlays</h2>
          {gt && <OverlayControl label="Ground truth" colour="green" value={truth} onChange={setTruth} />}
          {result?.result ? (
            <OverlayControl label="Prediction" colour="red" value={pred} onChange={setPred} />
          ) : (
            <p className="hint">No prediction yet.</p>
          )}
          {version && (
            <OverlayControl label={`Corrected v${version.version}`} colour="blue" value={versionOverlay} onChange={setVersionOverlay} />
          )}
          {adc?.adcUnit && <p className="hint">ADC in {ADC_UNIT_LABELS[adc.adcUnit]}</p>}
        </div>
        <JobPanel caseId={id} signedIn={!!me.data} onResult={setResult} current={result} />
        {me.data && (
          <EditPanel
            caseId={id}
            controls={drawing}
            prediction={result}
            versions={versions.data?.items ?? []}
            editing={editing}
            dirty={dirty}
            onEditing={(on) => {
              setEditing(on);
              setDirty(false);
            }}
            onSaved={(v) => {
              setDirty(false);
              setShownVersion(v.id);
            }}
          />
        )}
        <VersionsPanel versions={versions.data?.items ?? []} shown={shownVersion} onShow={setShownVersion} />
        <JobHistory jobs={jobs.data?.items ?? []} shown={result?.id ?? null} onOpen={setResult} />
        {c.owned && (
          <div className="panel">
            <button
              className="secondary"
              onClick={() =>
                confirm(`Delete the case “${c.name}” with its volumes, jobs and masks? This cannot be undone.`) && remove.mutate({ id })
              }
            >
              Delete this case
            </button>
            {remove.error && <p className="error">{remove.error.message}</p>}
          </div>
        )}
      </aside>
    </div>
  );
}

function OverlayControl(props: { label: string; colour: string; value: Overlay; onChange: (o: Overlay) => void }) {
  const { value, onChange } = props;
  return (
    <div className="overlay">
      <label>
        <input type="checkbox" checked={value.visible} onChange={(e) => onChange({ ...value, visible: e.target.checked })} />
        <span className={`swatch ${props.colour}`} /> {props.label}
      </label>
      <input
        type="range"
        min={0}
        max={1}
        step={0.05}
        value={value.opacity}
        aria-label={`${props.label} opacity`}
        onChange={(e) => onChange({ ...value, opacity: Number(e.target.value) })}
      />
    </div>
  );
}
