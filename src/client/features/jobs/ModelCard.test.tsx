// @vitest-environment happy-dom
import { cleanup, render } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { ModelInfo } from '../../../shared/models.js';
import { ModelCard } from './ModelCard.js';

const base: ModelInfo = {
  id: 'm',
  name: 'A model',
  version: '1.0.0',
  description: 'A model for the test.',
  kind: 'trained',
  method: 'trained',
  inputs: ['dwi', 'adc'],
  patchSize: [128, 128, 128],
  spacingMm: [1, 1, 1],
  orientation: 'RAS',
  classes: 2,
  lesionClasses: [1],
  mirroring: [0, 1, 2],
  card: {
    trainedOn: "ISLES'22 training set (250 cases)",
    intendedUse: 'Research on acute stroke DWI',
    limits: 'Not tested on haemorrhage',
    citation: 'Someone et al. 2024',
    licence: 'CC BY-NC 4.0',
  },
};

describe('ModelCard', () => {
  afterEach(cleanup);

  it("shows a trained model's card: trained on, intended use, limits, spacing and orientation, citation and licence", () => {
    const { getByTestId } = render(<ModelCard model={base} />);
    const text = getByTestId('model-card').textContent;
    expect(text).toContain("Trained onISLES'22 training set (250 cases)");
    expect(text).toContain('Intended useResearch on acute stroke DWI');
    expect(text).toContain('LimitsNot tested on haemorrhage');
    expect(text).toContain('Runs at1 × 1 × 1 mm, RAS');
    expect(text).toContain('Someone et al. 2024 · Licence: CC BY-NC 4.0');
    expect(text).toContain('not for clinical use');
    expect(text).not.toMatch(/rule-based/i);
  });

  it('says "rule-based, not for clinical use" for a rule, and what it runs at when the manifest says nothing', () => {
    const rule: ModelInfo = { ...base, kind: 'rule-based', method: 'rule-based', spacingMm: null, orientation: 'native', card: {} };
    const text = render(<ModelCard model={rule} />).getByTestId('model-card').textContent;
    expect(text).toContain('Rule-based, not for clinical use.');
    expect(text).toContain('Trained onnot trained: a fixed rule');
    expect(text).toContain('Runs atthe case’s own spacing, its own orientation');
    expect(text).not.toContain('Licence');
  });
});
