import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { manifestSchema } from '../../shared/models.js';
import { ROOT } from '../test/process.js';

// docs/models.md's worked manifests (#25) must be manifests strokeview accepts: every ```json
// block there that has an "id" is parsed with the same schema the model loader uses.
const doc = readFileSync(path.join(ROOT, 'docs/models.md'), 'utf8');
const blocks = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!);
const manifests = blocks.filter((b) => /"id"\s*:/.test(b));

describe('docs/models.md worked manifests', () => {
  it('has the nnU-Net and the MONAI worked manifest', () => {
    expect(manifests.length).toBeGreaterThanOrEqual(2);
  });

  it.each(manifests.map((text) => [/"id"\s*:\s*"([^"]*)"/.exec(text)?.[1] ?? '(no id)', text]))(
    '%s parses with manifestSchema',
    (_id, text) => {
      const raw = JSON.parse(text) as unknown;
      const parsed = manifestSchema.safeParse(raw);
      const issues = parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
      expect(issues).toEqual([]);
    },
  );
});
