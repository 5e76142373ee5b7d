/// <reference lib="dom" />
// `npm run build && npx tsx scripts/screenshot-model-card.ts`: docs/screenshots/model-card.png —
// the job panel's model picker with the default (rule-based) model's card — and
// model-card-trained.png with an example trained model's (a stand-in graph in MODELS_DIR, its
// card as a research group would write it), from a live built server of its own.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { launchBrowser, newPage, startServer } from '../e2e/helpers.js';
import { tempModelsRoot, testManifest, writeModelFolder } from '../src/server/test/onnx-models.js';
import { ROOT } from '../src/server/test/process.js';

const modelsDir = tempModelsRoot();
writeModelFolder(
  modelsDir,
  'example-nnunet',
  testManifest('example-nnunet', {
    name: 'Example nnU-Net export (stand-in graph)',
    manifestVersion: 2,
    spacingMm: [1, 1, 1],
    orientation: 'RAS',
    patchSize: [128, 128, 128],
    mirroring: [0, 1, 2],
    output: { activation: 'softmax' },
    card: {
      trainedOn: "ISLES'22 training cases, DWI + ADC, 5-fold (example text)",
      intendedUse: 'Research on acute ischemic lesions in adults.',
      limits: 'Not validated on haemorrhage, children or other scanners than the training sites.',
      citation: 'Isensee et al., Nat Methods 2021 (nnU-Net)',
      licence: 'CC BY-NC-SA 4.0',
    },
  }),
  { channelsOut: 2 },
);

const server = await startServer({ MODELS_DIR: modelsDir });
const browser = await launchBrowser();
try {
  const { page } = await newPage(browser, { viewport: { width: 1400, height: 860 }, deviceScaleFactor: 2 });
  await page.goto(`${server.url}/sign-in`);
  await page.getByRole('button', { name: 'Continue as guest' }).click();
  await page.getByTestId('account').waitFor();
  await page.locator('[data-testid=case-list] a').first().click();
  await page.getByTestId('model-card').waitFor();
  const dir = path.join(ROOT, 'docs', 'screenshots');
  mkdirSync(dir, { recursive: true });
  await page.getByTestId('job-panel').screenshot({ path: path.join(dir, 'model-card.png') });
  await page.getByLabel('Model').selectOption('example-nnunet');
  await page.getByTestId('model-card').getByText('Trained network').waitFor();
  await page.getByTestId('job-panel').screenshot({ path: path.join(dir, 'model-card-trained.png') });
  console.log(`wrote ${dir}/model-card.png and model-card-trained.png`);
} finally {
  await browser.close();
  await server.stop();
}
