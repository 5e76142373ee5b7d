import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * A real Orthanc (Debian's, with its DICOMweb plugin) for a test: a plain process on free ports
 * with a throwaway storage folder, reached at `<url>/dicom-web`. `.ci/run` installs it.
 */

export const ORTHANC_BIN = '/usr/sbin/Orthanc';
export const ORTHANC_PLUGINS = '/usr/share/orthanc/plugins';
export const HAVE_ORTHANC = existsSync(ORTHANC_BIN) && existsSync(path.join(ORTHANC_PLUGINS, 'libOrthancDicomWeb.so'));
export const ORTHANC_SKIP_NOTE = HAVE_ORTHANC ? '' : ` (skipped: ${ORTHANC_BIN} or its DICOMweb plugin is missing)`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Orthanc {
  url: string;
  dicomWeb: string;
  stop(): Promise<void>;
}

export async function startOrthanc(): Promise<Orthanc> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sv-orthanc-'));
  const [http, dicom] = [await freePort(), await freePort()];
  const cfg = path.join(dir, 'cfg.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      Name: 'strokeview-test',
      HttpPort: http,
      DicomPort: dicom,
      StorageDirectory: path.join(dir, 'db'),
      IndexDirectory: path.join(dir, 'db'),
      Plugins: [ORTHANC_PLUGINS],
      DicomWeb: { Enable: true, Root: '/dicom-web/' },
      RemoteAccessAllowed: true,
      AuthenticationEnabled: false,
      HttpTimeout: 120,
    }),
  );
  const child: ChildProcess = spawn(ORTHANC_BIN, [cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const url = `http://127.0.0.1:${http}`;
  // Ready when /system and /dicom-web/studies answer (a process that started; no timing involved).
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`Orthanc exited (${child.exitCode}): ${stderr}`);
    const ok = await fetch(`${url}/dicom-web/studies`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) break;
    if (i > 600) throw new Error(`Orthanc did not answer: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    dicomWeb: `${url}/dicom-web`,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
