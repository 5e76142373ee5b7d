import type { ModelInfo } from '../../../shared/models.js';

const mm = (s: readonly number[]) => `${s.join(' × ')} mm`;

/**
 * The chosen model in a few lines, from its manifest's card: what it was trained on, for what,
 * its limits, what the server does to a case before running it, where it comes from.
 */
export function ModelCard({ model }: { model: ModelInfo }) {
  const { card } = model;
  const rule = model.method === 'rule-based';
  const rows: [string, string | undefined][] = [
    ['Trained on', card.trainedOn ?? (rule ? 'not trained: a fixed rule' : 'not stated by the model')],
    ['Intended use', card.intendedUse],
    ['Limits', card.limits],
    [
      'Runs at',
      `${model.spacingMm ? mm(model.spacingMm) : 'the case’s own spacing'}, ${model.orientation === 'native' ? 'its own orientation' : model.orientation}`,
    ],
  ];
  const source = [card.citation, card.licence && `Licence: ${card.licence}`].filter(Boolean).join(' · ');
  return (
    <div className="model-card" data-testid="model-card">
      <p className="model-card-use">
        {rule ? 'Rule-based, not for clinical use.' : 'Trained network, for research: not for clinical use.'}
      </p>
      <dl>
        {rows.map(([term, text]) =>
          text ? (
            <div key={term}>
              <dt>{term}</dt>
              <dd>{text}</dd>
            </div>
          ) : null,
        )}
      </dl>
      {source && <p className="hint">{source}</p>}
    </div>
  );
}
