/** Whether this browser can give NiiVue a WebGL2 context (checked before NiiVue starts). */
export function hasWebGL2(): boolean {
  try {
    const canvas = document.createElement('canvas');
    const gl = canvas.getContext('webgl2');
    gl?.getExtension('WEBGL_lose_context')?.loseContext();
    return !!gl;
  } catch {
    return false;
  }
}

/**
 * Frees a canvas's WebGL context now: lose it, shrink the canvas, remove it. `nv.cleanup()` alone
 * leaves the context alive, and a page gets about 16 before the browser drops the oldest.
 */
export function releaseCanvas(canvas: HTMLCanvasElement): void {
  const gl = canvas.getContext('webgl2');
  gl?.getExtension('WEBGL_lose_context')?.loseContext();
  canvas.width = 0;
  canvas.height = 0;
  canvas.remove();
}
