#!/usr/bin/env node
// `strokeview` / `npx strokeview`: the TypeScript source through tsx in a checkout (always current),
// the built JavaScript where only the build is shipped.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/index.ts', import.meta.url);
const built = new URL('../dist/src/cli/index.js', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import(built.href);
}
