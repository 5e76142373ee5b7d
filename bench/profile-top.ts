import { readFileSync } from 'node:fs';
import path from 'node:path';

// `tsx bench/profile-top.ts <file.cpuprofile> [n] [layers]`: the functions with the most self time in a V8
// CPU profile (what `node --cpu-prof` writes), as a share of the sampled time — the table the
// README's profile notes come from. Functions are grouped by name and file; `(idle)` is the event
// loop waiting, `(garbage collector)` is GC.

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export function topSelfTime(profile: Profile, n = 15): { name: string; where: string; ms: number; share: number }[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = (profile.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    const frame = byId.get(id)!.callFrame;
    const file = frame.url ? shortPath(frame.url) : '';
    const key = `${frame.functionName || '(anonymous)'}\t${file}${file ? `:${frame.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([key, ms]) => {
      const [name, where] = key.split('\t') as [string, string];
      return { name, where, ms, share: ms / total };
    });
}

/** Self time by layer: the npm package, the folder under src/, or Node/V8 itself. */
export function selfTimeByLayer(profile: Profile, n = 12): { layer: string; ms: number; share: number }[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = (profile.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    const { url, functionName } = byId.get(id)!.callFrame;
    const p = shortPath(url);
    let layer: string;
    if (!url) layer = functionName.startsWith('(') ? functionName : `node (native: ${functionName || '?'})`;
    else if (url.includes('node_modules/')) layer = p.startsWith('@') ? p.split('/').slice(0, 2).join('/') : p.split('/')[0]!;
    else if (p.startsWith('src/')) layer = p.split('/').slice(0, 3).join('/');
    else if (/^wasm/.test(url) || /^[0-9a-f]{8}$/.test(p)) layer = 'wasm (PGlite)';
    else layer = 'node (internals)';
    self.set(layer, (self.get(layer) ?? 0) + dt);
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([layer, ms]) => ({ layer, ms, share: ms / total }));
}

function shortPath(url: string): string {
  const p = url.replace(/^file:\/\//, '');
  const nm = p.lastIndexOf('node_modules/');
  if (nm >= 0) return p.slice(nm + 'node_modules/'.length);
  const src = p.indexOf('/src/');
  return src >= 0 ? p.slice(src + 1) : path.basename(p);
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const file = process.argv[2];
  if (!file) throw new Error('usage: tsx bench/profile-top.ts <file.cpuprofile> [n]');
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  if (process.argv[4] === 'layers') {
    for (const row of selfTimeByLayer(profile, Number(process.argv[3] ?? 12))) {
      console.log(`${(row.share * 100).toFixed(1).padStart(5)} %  ${row.ms.toFixed(0).padStart(6)} ms  ${row.layer}`);
    }
    process.exit(0);
  }
  for (const row of topSelfTime(profile, Number(process.argv[3] ?? 15))) {
    console.log(`${(row.share * 100).toFixed(1).padStart(5)} %  ${row.ms.toFixed(0).padStart(6)} ms  ${row.name}  ${row.where}`);
  }
}
