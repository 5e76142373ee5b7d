import { skipToken } from '@tanstack/react-query';
import { Suspense, lazy, useEffect, useMemo, useState } from 'react';
import type { VolumeRole } from '../../../shared/cases.js';
import { ADC_UNIT_LABELS } from '../../../shared/nifti.js';
import { ErrorBoundary } from '../../components/ErrorBoundary.js';
import { navigate, useSearchParam } from '../../router.js';
import { trpc } from '../../trpc.js';
import { ExportPanel } from '../dicom/ExportPanel.js';
import { JobHistory } from '../jobs/JobHistory.js';
import { JobPanel } from '../jobs/JobPanel.js';
import { useCase } from '../cases/useCase.js';
import { LesionTable } from '../lesions/LesionTable.js';
import { StatusColours } from '../lesions/StatusColours.js';
import { useLesionTable } from '../lesions/useLesionTable.js';
import { type EditTool, EditPanel, VersionsPanel } from '../masks/EditPanel.js';
import { RefineBar } from '../masks/RefineBar.js';
import { useWorkingMask } from '../masks/useWorkingMask.js';
import type { DrawingControls, Layout, Navigator, OutlineLayer, Readout, StatusLayer } from './NiivueCanvas.js';
import { type Overlay, shownBackground, useCaseViewer, useLeaveGuard, viewerVolumes } from './useCaseViewer.js';
import { hasWebGL2 } from './webgl.js';

// NiiVue is most of the bundle: loaded only when a case is opened (main.tsx starts the download
// early when the page opens on a case).
export const loadNiivue = () => import('./NiivueCanvas.js');
const NiivueCanvas = lazy(loadNiivue);

export function CaseView({ id }: { id: string }) {
  const { detail, signedIn, notFound, jobs, versions, latest } = useCase(id);
  // `?job=<id>` (a study row, a shared link) shows that job's result instead of the case's newest;
  // `?study=<id>` offers the way back to the study
  const jobParam = useSearchParam('job');
  const studyParam = useSearchParam('study');
  const pinned = trpc.jobs.byId.useQuery(jobParam && detail.isSuccess ? { id: jobParam } : skipToken, { retry: false });
  const pinnedJob = pinned.data && pinned.data.caseId === id && pinned.data.status === 'succeeded' ? pinned.data : null;
  const view = useCaseViewer(jobParam ? pinnedJob : latest);
  const [readout, setReadout] = useState<Readout | null>(null);
  const [drawing, setDrawing] = useState<DrawingControls | null>(null);
  const [nav, setNav] = useState<Navigator | null>(null);
  const [tool, setTool] = useState<EditTool>('pen');
  const [byStatus, setByStatus] = useState(false);
  const work = useWorkingMask({ caseId: id, controls: drawing, onEdited: view.edited });
  const version = versions.find((v) => v.id === view.shownVersion);
  // the lesions of what is shown: the working mask while editing, else the version shown, else the job's result
  const shown = view.editing
    ? { list: work.lesions, of: 'working mask' }
    : version
      ? { list: version.lesions, of: `version ${version.version}` }
      : view.result?.result
        ? { list: view.result.result.lesions, of: `result (${view.result.modelIds.join(', ')})` }
        : null;
  const table = useLesionTable(shown?.list ?? null, nav);
  const statusUnavailable = view.editing
    ? 'Not while editing: the working mask is drawn in the pen colour.'
    : !shown?.list
      ? 'No lesion list for what is shown.'
      : !shown.list.items.some((l) => l.status)
        ? 'No ground truth: lesions have no TP / FP / FN status.'
        : null;
  const status = useMemo<StatusLayer | null>(
    () =>
      byStatus && !statusUnavailable && shown?.list
        ? { sourceKey: version ? 'version' : 'prediction', lesions: shown.list.items, opacity: 0.85 }
        : null,
    [byStatus, statusUnavailable, shown?.list, version],
  );
  // the selected row's lesion outlined in every view (not while editing: the working mask has moved on from the list's source)
  const selectedLesion = shown?.list?.items.find((l) => l.id === table.selected) ?? null;
  const outline = useMemo<OutlineLayer | null>(
    () => (selectedLesion && !view.editing ? { sourceKey: version ? 'version' : 'prediction', lesion: selectedLesion } : null),
    [selectedLesion, view.editing, version],
  );
  const utils = trpc.useUtils();
  const remove = trpc.cases.delete.useMutation({
    onSuccess: async () => {
      await utils.cases.list.invalidate();
      navigate('/');
    },
  });
  const webgl = useMemo(hasWebGL2, []);
  useLeaveGuard(view.dirty);

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

  if (detail.isPending) return <p>Loading the case…</p>;
  if (detail.isError) {
    return (
      <p className="error" role="alert">
        {notFound ? 'Case not found' : detail.error.message}
      </p>
    );
  }
  const c = detail.data;
  const vol = (role: VolumeRole) => c.volumes.find((v) => v.role === role);
  // coloured by status, the mask is drawn by the status layer in its place; while editing, the
  // working mask (the drawing, in the pen's red) is drawn in place of the prediction and version
  const replaced = (key: string) => (status && key === status.sourceKey) || (view.editing && (key === 'prediction' || key === 'version'));
  const volumes = viewerVolumes(c.volumes, view, versions).map((v) => (replaced(v.key) ? { ...v, visible: false } : v));
  const bg = shownBackground(c.volumes, view);
  const gt = vol('mask');
  const { result, truth, pred, versionOverlay } = view;
  const adc = vol('adc');

  return (
    <div className="case-view">
      <div className="viewer-column">
        <div className="toolbar">
          {studyParam && (
            <a
              href={`/studies/${encodeURIComponent(studyParam)}`}
              data-testid="back-to-study"
              onClick={(e) => {
                e.preventDefault();
                navigate(`/studies/${encodeURIComponent(studyParam)}`);
              }}
            >
              ← Back to the study
            </a>
          )}
          <h1>{c.name}</h1>
          {jobParam && pinned.isError && (
            <p className="error" data-testid="job-param-error">
              The linked result is not available: {pinned.error.message}
            </p>
          )}
          {jobParam && pinned.data && !pinnedJob && (
            <p className="error" data-testid="job-param-error">
              The linked job is {pinned.data.caseId === id ? pinned.data.status : 'of another case'}: it has no result to show.
            </p>
          )}
          <label>
            Image
            <select value={bg.role} onChange={(e) => view.setBackground(e.target.value as VolumeRole)} aria-label="Background image">
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
            <select value={view.layout} onChange={(e) => view.setLayout(e.target.value as Layout)} aria-label="Layout">
              <option value="multiplanar">Axial, coronal, sagittal + 3D</option>
              <option value="axial">Axial</option>
              <option value="render">3D</option>
            </select>
          </label>
          <label className="inline">
            <input type="checkbox" checked={view.crosshair} onChange={(e) => view.setCrosshair(e.target.checked)} />
            Crosshair
          </label>
        </div>
        {webgl ? (
          <ErrorBoundary>
            <Suspense fallback={<p>Loading the viewer…</p>}>
              <NiivueCanvas
                volumes={volumes}
                layout={view.layout}
                crosshair={view.crosshair}
                onLocation={setReadout}
                onDrawing={setDrawing}
                onNavigator={setNav}
                onEdit={() => {
                  view.edited();
                  work.stroke();
                }}
                onVoxelClick={(v, shift) => view.editing && tool === 'click' && void work.refine(v, !shift)}
                status={status}
                outline={outline}
              />
            </Suspense>
          </ErrorBoundary>
        ) : (
          <p className="error" role="alert">
            This browser cannot show the images: WebGL2 is not available (it may be turned off, or the graphics driver is blocked). Try
            another browser or enable hardware acceleration.
          </p>
        )}
        <p
          className="readout"
          data-testid="readout"
          data-voxel={readout ? (readout.gridVox ?? readout.vox).join(',') : undefined}
          title="The voxel is on the DWI grid (the masks' and lesions' grid)"
        >
          {readout
            ? `${readout.mm.map((x) => x.toFixed(1)).join(', ')} mm · voxel ${(readout.gridVox ?? readout.vox).join(', ')} · ${readout.values.map((v) => `${v.name}: ${Number.isInteger(v.value) ? v.value : v.value.toFixed(3)}`).join(' · ')}`
            : 'Click the images to read values.'}
        </p>
        {view.editing && <RefineBar work={work} tool={tool} onTool={setTool} />}
        {shown && (
          <LesionTable
            colours={<StatusColours on={byStatus} onChange={setByStatus} unavailable={statusUnavailable} />}
            list={shown.list}
            of={shown.of}
            table={table}
            stale={view.editing && work.stale}
            onReject={view.editing ? work.rejectLesion : undefined}
            onAdd={view.editing ? (l) => void work.refine(l.seedVoxel, true) : undefined}
            busy={work.refining}
          />
        )}
      </div>
      <aside>
        <div className="panel">
          <h2>Overlays</h2>
          {gt && <OverlayControl label="Ground truth" colour="green" value={truth} onChange={view.setTruth} />}
          {result?.result ? (
            <OverlayControl label="Prediction" colour="red" value={pred} onChange={view.setPred} />
          ) : (
            <p className="hint">No prediction yet.</p>
          )}
          {version && (
            <OverlayControl
              label={`Corrected v${version.version}`}
              colour="blue"
              value={versionOverlay}
              onChange={view.setVersionOverlay}
            />
          )}
          {adc?.adcUnit && <p className="hint">ADC in {ADC_UNIT_LABELS[adc.adcUnit]}</p>}
        </div>
        <JobPanel caseId={id} signedIn={signedIn} onResult={view.setResult} current={result} />
        {signedIn && (
          <EditPanel
            caseId={id}
            controls={drawing}
            prediction={result}
            versions={versions}
            editing={view.editing}
            dirty={view.dirty}
            onEditing={view.setEditing}
            onSaved={view.saved}
            work={work}
            tool={tool}
            onTool={setTool}
            crosshair={readout?.gridVox ?? null}
          />
        )}
        <VersionsPanel versions={versions} shown={view.shownVersion} onShow={view.setShownVersion} />
        {signedIn && (
          <ExportPanel
            dicomCase={!!c.dicom}
            source={
              version
                ? { maskVersionId: version.id, label: `Corrected version ${version.version}` }
                : result?.status === 'succeeded'
                  ? { jobId: result.id, label: `The ${result.modelIds.join(' + ')} result` }
                  : null
            }
          />
        )}
        <JobHistory jobs={jobs} shown={result?.id ?? null} onOpen={view.setResult} />
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
