import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempModelsRoot, testGraph, testManifest, writeModelFolder } from '../test/onnx-models.js';
import { sessionFor } from './cpu.js';
import { builtInModelsDir, loadModelRegistry, modelFingerprint } from './models.js';

const load = (root: string, maxModelBytes?: number) =>
  loadModelRegistry({ roots: [root], provider: 'cpu', threads: 1, ...(maxModelBytes ? { maxModelBytes } : {}) });
const errorsOf = (failed: { dir: string; error: string }[]) => Object.fromEntries(failed.map((f) => [path.basename(f.dir), f.error]));

describe('models are checked against their graph at load', () => {
  it('each manifest/graph disagreement fails that model with a sentence; the others load', async () => {
    const root = tempModelsRoot();
    writeModelFolder(root, 'good', testManifest('good'));
    writeModelFolder(root, 'good-static', testManifest('good-static', { patchSize: [16, 20, 24], axisOrder: 'zyx' }), {
      input: [1, 2, 24, 20, 16],
    });
    writeModelFolder(root, 'good-softmax', testManifest('good-softmax', { output: { activation: 'softmax', lesionClasses: [1, 2] } }), {
      channelsOut: 3,
    });
    writeModelFolder(root, 'good-second-output', testManifest('good-second-output', { output: { activation: 'sigmoid', index: 1 } }), {
      secondOutput: true,
    });
    writeModelFolder(root, 'good-fp16', testManifest('good-fp16', { inputType: 'float16' }), { inputType: 'float16' });
    writeModelFolder(root, 'channels', testManifest('channels'), { channelsIn: 3 });
    writeModelFolder(root, 'patch', testManifest('patch', { patchSize: [32, 32, 32] }), { input: [1, 2, 16, 16, 16] });
    writeModelFolder(root, 'static-no-patch', testManifest('static-no-patch'), { input: ['N', 2, 16, 16, 16] });
    writeModelFolder(root, 'output-index', testManifest('output-index', { output: { activation: 'sigmoid', index: 1 } }));
    writeModelFolder(root, 'output-name', testManifest('output-name', { output: { activation: 'sigmoid', name: 'seg' } }));
    writeModelFolder(root, 'lesion-class', testManifest('lesion-class', { output: { activation: 'softmax', lesionClasses: [1, 3] } }), {
      channelsOut: 3,
    });
    // The channel count is symbolic in the graph: the dry run finds it.
    writeModelFolder(
      root,
      'lesion-class-dynamic',
      testManifest('lesion-class-dynamic', { output: { activation: 'softmax', lesionClass: 2 } }),
      {
        channelsOut: 2,
        output: ['N', 'K', 'X', 'Y', 'Z'],
      },
    );
    writeModelFolder(
      root,
      'lesion-classes-sigmoid',
      testManifest('lesion-classes-sigmoid', { output: { activation: 'sigmoid', lesionClasses: [1] } }),
    );
    writeModelFolder(root, 'classes', testManifest('classes', { output: { activation: 'softmax', classes: 4 } }), { channelsOut: 3 });
    writeModelFolder(root, 'fp16-on-fp32', testManifest('fp16-on-fp32', { inputType: 'float16' }));
    writeModelFolder(root, 'dry-run', testManifest('dry-run'), { fixedReshape: [1, 2, 8, 8, 8] });
    writeModelFolder(
      root,
      'interactive-channels',
      {
        ...testManifest('interactive-channels'),
        kind: 'interactive',
        method: 'trained',
        prompts: { encoding: 'gaussian', sigmaMm: 3 },
        previousMask: true,
        cropMm: [64, 64, 64],
        output: { activation: 'sigmoid' },
      },
      { channelsIn: 4 },
    );

    const reg = await load(root);
    try {
      expect([...reg.models.keys()].sort()).toEqual(['good', 'good-fp16', 'good-second-output', 'good-softmax', 'good-static']);
      const errors = errorsOf(reg.failed);
      expect(Object.keys(errors).sort()).toEqual(
        [
          'channels',
          'classes',
          'dry-run',
          'fp16-on-fp32',
          'interactive-channels',
          'lesion-class',
          'lesion-class-dynamic',
          'lesion-classes-sigmoid',
          'output-index',
          'output-name',
          'patch',
          'static-no-patch',
        ].sort(),
      );
      expect(errors.channels).toBe("model channels: manifest says 2 input channels (dwi, adc), the graph's input `input` has 3");
      expect(errors.patch).toBe(
        "model patch: manifest's patchSize [32, 32, 32] (x, y, z) is [32, 32, 32] in axisOrder xyz, the graph's input `input` has [16, 16, 16]",
      );
      expect(errors['static-no-patch']).toMatch(
        /^model static-no-patch: the graph's input `input` has fixed spatial dims \[16, 16, 16\] but the manifest's patchSize is null/,
      );
      expect(errors['output-index']).toBe(
        "model output-index: manifest's output.index 1 is out of range: the graph has 1 output (`logits`)",
      );
      expect(errors['output-name']).toBe("model output-name: manifest's output.name `seg` is not among the graph's outputs (`logits`)");
      expect(errors['lesion-class']).toBe(
        "model lesion-class: manifest's lesion class 3 does not exist: the graph's output `logits` has 3 channels (0–2)",
      );
      expect(errors['lesion-class-dynamic']).toBe(
        "model lesion-class-dynamic: manifest's lesion class 2 does not exist: the graph's output `logits` has 2 channels (0–1)",
      );
      expect(errors['lesion-classes-sigmoid']).toBe(
        "model lesion-classes-sigmoid: manifest's lesion class 1 does not exist: the graph's output `logits` has 1 channel (0–0)",
      );
      expect(errors.classes).toBe("model classes: manifest says output.classes 4, the graph's output `logits` has 3 channels");
      expect(errors['fp16-on-fp32']).toBe("model fp16-on-fp32: manifest's inputType is float16, the graph's input `input` is float32");
      expect(errors['dry-run']).toMatch(/^model dry-run: the dry run on zeros \[1, 2, 32, 32, 32\] failed: /);
      expect(errors['interactive-channels']).toBe(
        "model interactive-channels: manifest says 5 input channels (2 image + 2 guidance + 1 previous mask), the graph's input `input` has 4",
      );
      // what the graph says fills what the manifest left out
      const softmax = reg.list().find((m) => m.id === 'good-softmax')!;
      expect(softmax).toMatchObject({ classes: 3, lesionClasses: [1, 2] });
      expect(reg.list().find((m) => m.id === 'good')).toMatchObject({ classes: 1, lesionClasses: [0] });
    } finally {
      await reg.close();
    }
  });

  it('a model file over MODEL_MAX_MB fails at load with a message', async () => {
    const root = tempModelsRoot();
    writeModelFolder(root, 'big', testManifest('big'));
    const reg = await load(root, 100);
    try {
      expect(reg.models.size).toBe(0);
      expect(reg.failed[0]!.error).toMatch(/^model big: model\.onnx is 0 MiB, over MODEL_MAX_MB \(0 MiB\)/);
    } finally {
      await reg.close();
    }
  });

  it('the built-in models load with nothing failed', async () => {
    const reg = await load(builtInModelsDir());
    try {
      expect(reg.failed).toEqual([]);
      expect([...reg.models.keys()].sort()).toEqual(['adc-core-v1', 'adc-dwi-v2']);
      expect([...reg.interactive.keys()]).toEqual(['click-grow-v1']);
      for (const m of reg.list()) expect(m).toMatchObject({ classes: 1, lesionClasses: [0] });
    } finally {
      await reg.close();
    }
  });
});

describe('reload', () => {
  it('swaps the new set into the same registry object; keeps the old one when no segmentation model loads', async () => {
    const root = tempModelsRoot();
    writeModelFolder(root, 'first', testManifest('first'));
    const reg = await load(root);
    try {
      const { models } = reg;
      const before = reg.models.get('first')!;
      writeModelFolder(root, 'second', testManifest('second'));
      writeModelFolder(root, 'broken', testManifest('broken'), { channelsIn: 3 });
      const report = await reg.reload();
      expect(report.loaded.sort()).toEqual(['first', 'second']);
      expect(report.failed.map((f) => path.basename(f.dir))).toEqual(['broken']);
      expect(reg.models).toBe(models);
      expect(reg.list().map((m) => m.id)).toEqual(['first', 'second']);
      expect(reg.failed).toEqual(report.failed);
      // a fresh session: the old one was released
      expect(reg.models.get('first')!.session).not.toBe(before.session);
      await expect(before.session.run({})).rejects.toThrow();

      for (const id of ['first', 'second']) rmSync(path.join(root, id), { recursive: true });
      await expect(reg.reload()).rejects.toThrow(/No segmentation model could be loaded, so the models already loaded stay/);
      expect([...reg.models.keys()].sort()).toEqual(['first', 'second']);
    } finally {
      await reg.close();
    }
  });

  it("pool threads' sessions follow the file: a model.onnx rewritten at the same path gets a new session", async () => {
    const root = tempModelsRoot();
    const dir = writeModelFolder(root, 'm', testManifest('m'));
    const fp1 = await modelFingerprint(dir);
    const a = await sessionFor(dir, fp1, 'cpu', 1);
    expect(await sessionFor(dir, fp1, 'cpu', 1)).toBe(a);
    writeFileSync(path.join(dir, 'model.onnx'), testGraph({ channelsOut: 2 }));
    const fp2 = await modelFingerprint(dir);
    expect(fp2).not.toBe(fp1);
    const b = await sessionFor(dir, fp2, 'cpu', 1);
    expect(b).not.toBe(a);
    expect(b.outputMetadata[0]).toMatchObject({ shape: ['N', 2, 'X', 'Y', 'Z'] });
    await b.release();
  });
});
