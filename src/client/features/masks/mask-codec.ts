// The working mask as `masks.refine` takes and returns it: uint8 0/1 voxels on the DWI grid (x
// fastest), gzipped by the browser's own CompressionStream, in base64.

async function pipe(bytes: Uint8Array, stream: CompressionStream | DecompressionStream): Promise<Uint8Array> {
  const out = new Blob([new Uint8Array(bytes)]).stream().pipeThrough(stream);
  return new Uint8Array(await new Response(out).arrayBuffer());
}

export async function encodeMask(mask: Uint8Array): Promise<string> {
  const gz = await pipe(mask, new CompressionStream('gzip'));
  let text = '';
  // String.fromCharCode takes arguments: a chunk at a time stays under the engine's argument limit
  for (let i = 0; i < gz.length; i += 0x8000) text += String.fromCharCode(...gz.subarray(i, i + 0x8000));
  return btoa(text);
}

export async function decodeMask(base64: string, voxels: number): Promise<Uint8Array> {
  const text = atob(base64);
  const gz = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) gz[i] = text.charCodeAt(i);
  const mask = await pipe(gz, new DecompressionStream('gzip'));
  if (mask.length !== voxels) throw new Error(`The refined mask has ${mask.length} voxels, not the ${voxels} of the case's grid`);
  return mask;
}
