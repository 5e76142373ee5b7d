import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { builtInModelsDir } from '../segmentation/models.js';

/**
 * A models folder of variants of the built-in model: the same ONNX file under other manifests
 * (other ids, patch sizes, thresholds), or a raw manifest text to test bad ones.
 */
export function modelVariants(variants: Record<string, Record<string, unknown> | string>): string {
  const root = mkdtempSync(path.join(tmpdir(), 'sv-models-'));
  const builtIn = path.join(builtInModelsDir(), 'adc-core-v1');
  const manifest = JSON.parse(readFileSync(path.join(builtIn, 'manifest.json'), 'utf8'));
  for (const [id, m] of Object.entries(variants)) {
    mkdirSync(path.join(root, id));
    copyFileSync(path.join(builtIn, 'model.onnx'), path.join(root, id, 'model.onnx'));
    writeFileSync(path.join(root, id, 'manifest.json'), typeof m === 'string' ? m : JSON.stringify({ ...manifest, id, ...m }));
  }
  return root;
}
