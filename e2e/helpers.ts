/// <reference lib="dom" />
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { PNG } from 'pngjs';
import { ROOT, type ServerProcess, freePort, startProcess } from '../src/server/test/process.js';

export const SCREENSHOTS = path.join(ROOT, 'e2e', 'screenshots');
mkdirSync(SCREENSHOTS, { recursive: true });

/** Debian's Chromium with WebGL2 through SwiftShader (no GPU here), headless; launch() gives it a fresh temporary profile. */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--use-gl=angle',
      '--use-angle=swiftshader',
      '--enable-unsafe-swiftshader',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A real built server on a free port with a fresh DATA_DIR (one demo case unless told otherwise). */
export async function startServer(env: Record<string, string> = {}): Promise<ServerProcess> {
  const server = startProcess({
    PORT: String(await freePort()),
    DATA_DIR: mkdtempSync(path.join(tmpdir(), 'sv-e2e-')),
    DEMO_CASES: '1',
    ORT_THREADS: '1',
    ...env,
  });
  await server.waitReady();
  return server;
}

/**
 * Watches a page for what a person would call broken: console errors, uncaught exceptions and
 * failed requests. A test fails on any of them unless it says it expects one.
 */
export function watch(page: Page) {
  const problems: string[] = [];
  let swiftshaderGradientErrors = 0;
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // Known and cosmetic: NiiVue 0.69 precomputes the 3D render's lighting gradients by drawing
    // into 3D-texture layers, and SwiftShader (software WebGL, no GPU here) intermittently answers
    // FRAMEBUFFER_UNSUPPORTED (36061) when the machine is busy — never on an idle run. The images
    // and overlays still draw (the pixel checks prove it); counted, not failed.
    if (/^niivue-error (blur|sobel) shader: +36061$/.test(m.text())) {
      swiftshaderGradientErrors++;
      return;
    }
    problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    // a stream closed by the page itself (leaving a case) is not a failure
    if (r.failure()?.errorText === 'net::ERR_ABORTED') return;
    problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  return {
    problems,
    get swiftshaderGradientErrors() {
      return swiftshaderGradientErrors;
    },
    expectNone(allowed: RegExp[] = []) {
      const left = problems.filter((p) => !allowed.some((a) => a.test(p)));
      if (left.length) throw new Error(`the page reported problems:\n${left.join('\n')}`);
    },
  };
}

export async function newPage(
  browser: Browser,
  opts: Parameters<Browser['newContext']>[0] = {},
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...opts });
  // Deadlines for a busy machine (software WebGL shares the cores with the server and the unit
  // tests): a limit on a hang, not a speed target. Playwright's default is 30 s.
  context.setDefaultTimeout(180_000);
  const page = await context.newPage();
  return { context, page };
}

/** Counts red and green overlay pixels in a PNG of the canvas (the crosshair is blue: it counts as neither). */
export function overlayPixels(png: Buffer): {
  red: number;
  green: number;
  redInGreen: number;
  width: number;
  height: number;
  redMask: Uint8Array;
  greenMask: Uint8Array;
} {
  const img = PNG.sync.read(png);
  const n = img.width * img.height;
  const redMask = new Uint8Array(n);
  const greenMask = new Uint8Array(n);
  let red = 0;
  let green = 0;
  for (let i = 0; i < n; i++) {
    const r = img.data[4 * i]!;
    const g = img.data[4 * i + 1]!;
    const b = img.data[4 * i + 2]!;
    if (r > 120 && r > g + 60 && r > b + 60) {
      redMask[i] = 1;
      red++;
    } else if (g > 100 && g > r + 40 && g > b + 40) {
      greenMask[i] = 1;
      green++;
    }
  }
  return { red, green, redInGreen: 0, width: img.width, height: img.height, redMask, greenMask };
}

/** One built server and one browser for a test file, started before its tests and stopped after. */
export function serverAndBrowser(env: Record<string, string> = {}): { readonly server: ServerProcess; readonly browser: Browser } {
  const state = {} as { server: ServerProcess; browser: Browser };
  beforeAll(async () => {
    [state.server, state.browser] = await Promise.all([startServer(env), launchBrowser()]);
  }, 240_000);
  afterAll(async () => {
    await state.browser?.close();
    await state.server?.stop();
  });
  return state;
}

/** Waits until the viewer has loaded the volume with this key ('background', 'truth', 'prediction', 'version'). */
export function loaded(page: Page, key: string) {
  return page.waitForFunction((k) => document.querySelector('.viewer-holder')?.getAttribute('data-loaded')?.split(',').includes(k), key, {
    timeout: 120_000,
  });
}
