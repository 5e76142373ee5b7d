/**
 * Builds @strokeview/sdk from src/sdk into its own package and packs it: `npm run pack:sdk`.
 * The tarball's path is the last line printed.
 *
 * - JavaScript: one ESM file bundled by esbuild (src/sdk + the shared retry policy); its only
 *   imports are @trpc/client, @trpc/server (the client's peer) and eventsource.
 * - Types: the router's type is flattened by the TypeScript checker into plain object types
 *   (inputs and outputs only, no server context), so the bundled .d.ts (rollup-plugin-dts)
 *   references nothing of the server: installing the SDK installs none of the server's
 *   dependencies (onnxruntime-node, PGlite, pg, argon2, pg-boss).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { rollup } from 'rollup';
import { dts } from 'rollup-plugin-dts';
import ts from 'typescript';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'dist', 'sdk-build');
const PKG = path.join(OUT, 'package');
const TYPES = path.join(OUT, 'types');
const rootPkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
};

/** What the package depends on at run time: the tRPC client and what it needs. */
const RUNTIME_DEPENDENCIES = ['@trpc/client', '@trpc/server', 'eventsource'];

function log(msg: string) {
  process.stderr.write(`pack:sdk: ${msg}\n`);
}

rmSync(OUT, { recursive: true, force: true });
mkdirSync(PKG, { recursive: true });

// 1. JavaScript
await build({
  entryPoints: [path.join(ROOT, 'src/sdk/index.ts')],
  outfile: path.join(PKG, 'index.js'),
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2022',
  external: ['node:*', ...RUNTIME_DEPENDENCIES, ...RUNTIME_DEPENDENCIES.map((d) => `${d}/*`)],
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
});

// 2. Declarations of src/sdk, and the router type flattened by the checker
const flattenFile = path.join(OUT, 'flatten.ts');
writeFileSync(
  flattenFile,
  `import type { AppRouter } from ${JSON.stringify(path.join(ROOT, 'src/server/routers/_app.js'))};
export type FlatRecord = AppRouter['_def']['record'];
export type FlatErrorShape = AppRouter['_def']['_config']['$types']['errorShape'];
`,
);
const config = ts.getParsedCommandLineOfConfigFile(
  path.join(ROOT, 'tsconfig.json'),
  {},
  {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    },
  },
)!;
const program = ts.createProgram({
  rootNames: [path.join(ROOT, 'src/sdk/index.ts'), flattenFile],
  options: {
    ...config.options,
    noEmit: false,
    declaration: true,
    emitDeclarationOnly: true,
    sourceMap: false,
    declarationMap: false,
    rootDir: path.join(ROOT),
    outDir: TYPES,
  },
});
const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.category === ts.DiagnosticCategory.Error);
if (diagnostics.length) {
  throw new Error(
    ts.formatDiagnostics(diagnostics, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => ROOT, getNewLine: () => '\n' }),
  );
}
program.emit(undefined, undefined, undefined, true);

const checker = program.getTypeChecker();
const source = program.getSourceFile(flattenFile)!;
const aliasType = (name: string) => {
  const decl = source.statements.find((s): s is ts.TypeAliasDeclaration => ts.isTypeAliasDeclaration(s) && s.name.text === name)!;
  return checker.getTypeAtLocation(decl.name);
};

/**
 * Prints a data type structurally — objects, arrays, tuples, unions, literals — so no name of a
 * server module survives. The API's types are JSON data, plus FormData (uploads) and the
 * subscription's AsyncIterable<TrackedEnvelope<…>>.
 */
function print(t: ts.Type, depth = 0): string {
  if (depth > 40) throw new Error(`type too deep to flatten: ${checker.typeToString(t)}`);
  const f = t.flags;
  if (f & ts.TypeFlags.Any) return 'any';
  if (f & ts.TypeFlags.Unknown) return 'unknown';
  if (f & ts.TypeFlags.String) return 'string';
  if (f & ts.TypeFlags.Number) return 'number';
  if (f & ts.TypeFlags.Boolean) return 'boolean';
  if (f & ts.TypeFlags.BigInt) return 'bigint';
  if (f & ts.TypeFlags.Null) return 'null';
  if (f & ts.TypeFlags.Undefined) return 'undefined';
  if (f & ts.TypeFlags.Void) return 'void';
  if (f & ts.TypeFlags.Never) return 'never';
  if (f & ts.TypeFlags.ESSymbol || f & ts.TypeFlags.UniqueESSymbol) return 'symbol';
  if (t.isStringLiteral()) return JSON.stringify(t.value);
  if (t.isNumberLiteral()) return String(t.value);
  if (f & ts.TypeFlags.BooleanLiteral) return checker.typeToString(t);
  if (t.aliasSymbol?.name === 'TrackedEnvelope') return `TrackedEnvelope<${print(t.aliasTypeArguments![0]!, depth + 1)}>`;
  if (t.isUnion()) {
    // `boolean` arrives as `false | true`: print it back as boolean.
    const parts = t.types.map((x) => print(x, depth + 1));
    const hasBool = parts.includes('false') && parts.includes('true');
    const rest = hasBool ? parts.filter((p) => p !== 'false' && p !== 'true') : parts;
    return [...rest, ...(hasBool ? ['boolean'] : [])].map((p) => (p.includes('=>') ? `(${p})` : p)).join(' | ');
  }
  if (t.isIntersection()) return t.types.map((x) => `(${print(x, depth + 1)})`).join(' & ');
  if (checker.isTupleType(t)) {
    const args = checker.getTypeArguments(t as ts.TypeReference);
    return `[${args.map((a) => print(a, depth + 1)).join(', ')}]`;
  }
  if (checker.isArrayType(t)) return `Array<${print(checker.getTypeArguments(t as ts.TypeReference)[0]!, depth + 1)}>`;
  const name = t.getSymbol()?.name;
  if (name === 'FormData' || name === 'Blob' || name === 'File' || name === 'Uint8Array') return name;
  if (name === 'AsyncIterable') {
    const args = checker.getTypeArguments(t as ts.TypeReference).map((a) => print(a, depth + 1));
    return `AsyncIterable<${args.join(', ')}>`;
  }
  if (f & ts.TypeFlags.Object) {
    if (t.getCallSignatures().length) throw new Error(`a function type in the API: ${checker.typeToString(t)}`);
    const members = checker.getPropertiesOfType(t).map((p) => {
      const optional = p.flags & ts.SymbolFlags.Optional ? '?' : '';
      return `${JSON.stringify(p.name)}${optional}: ${print(checker.getTypeOfSymbol(p), depth + 1)}`;
    });
    for (const info of checker.getIndexInfosOfType(t))
      members.push(`[key: ${print(info.keyType, depth + 1)}]: ${print(info.type, depth + 1)}`);
    return `{ ${members.join('; ')} }`;
  }
  throw new Error(`cannot flatten ${checker.typeToString(t)}`);
}

const prop = (t: ts.Type, name: string) => {
  const p = t.getProperty(name);
  return p ? checker.getTypeOfSymbol(p) : undefined;
};
const PROCEDURE_KINDS = {
  query: 'TRPCQueryProcedure',
  mutation: 'TRPCMutationProcedure',
  subscription: 'TRPCSubscriptionProcedure',
} as const;

/** A router record: procedures as TRPC*Procedure<{ input; output; meta: object }>, nested routers recursively. */
function printRecord(t: ts.Type, indent: string): string {
  const lines = checker.getPropertiesOfType(t).map((p) => {
    const value = checker.getTypeOfSymbol(p);
    const def = prop(value, '_def');
    const kind = def && prop(def, 'type');
    if (def && kind?.isStringLiteral() && kind.value in PROCEDURE_KINDS) {
      const types = prop(def, '$types')!;
      const input = print(prop(types, 'input')!);
      const output = print(prop(types, 'output')!);
      return `${indent}  ${p.name}: ${PROCEDURE_KINDS[kind.value as keyof typeof PROCEDURE_KINDS]}<{ input: ${input}; output: ${output}; meta: object }>;`;
    }
    const record = def ? prop(def, 'record') : undefined;
    return `${indent}  ${p.name}: ${printRecord(record ?? value, `${indent}  `)};`;
  });
  return `{\n${lines.join('\n')}\n${indent}}`;
}

const routerDts = `import type { TRPCBuiltRouter, TRPCMutationProcedure, TRPCQueryProcedure, TRPCSubscriptionProcedure } from '@trpc/server';
/** The strokeview server's router: procedures with their input and output types (generated by scripts/pack-sdk.ts). */
export type AppRouter = TRPCBuiltRouter<{
  ctx: object;
  meta: object;
  errorShape: ${print(aliasType('FlatErrorShape'))};
  transformer: false;
}, ${printRecord(aliasType('FlatRecord'), '')}>;
`;
writeFileSync(path.join(TYPES, 'src/sdk/router.d.ts'), routerDts);

// 3. One .d.ts for the package
const bundle = await rollup({
  input: path.join(TYPES, 'src/sdk/index.d.ts'),
  plugins: [dts({ respectExternal: false })],
  external: (id) => RUNTIME_DEPENDENCIES.some((d) => id === d || id.startsWith(`${d}/`)),
});
await bundle.write({ file: path.join(PKG, 'index.d.ts'), format: 'es' });
await bundle.close();
const dtsText = readFileSync(path.join(PKG, 'index.d.ts'), 'utf8');
const imports = [...dtsText.matchAll(/from ['"]([^'"]+)['"]/g)].map((m) => m[1]!);
const foreign = imports.filter((i) => !RUNTIME_DEPENDENCIES.some((d) => i === d || i.startsWith(`${d}/`)));
if (foreign.length) throw new Error(`index.d.ts imports modules the package does not depend on: ${foreign.join(', ')}`);

// 4. package.json, README, LICENSE-free metadata, and the tarball
const dependencies = Object.fromEntries(RUNTIME_DEPENDENCIES.map((d) => [d, rootPkg.dependencies[d]!]));
writeFileSync(
  path.join(PKG, 'package.json'),
  `${JSON.stringify(
    {
      name: '@strokeview/sdk',
      version: rootPkg.version,
      description: 'Typed client for strokeview: ischemic-stroke lesion segmentation on brain MRI',
      type: 'module',
      main: './index.js',
      types: './index.d.ts',
      exports: { '.': { types: './index.d.ts', import: './index.js' } },
      files: ['index.js', 'index.js.map', 'index.d.ts', 'README.md'],
      engines: { node: '>=20' },
      sideEffects: false,
      dependencies,
    },
    null,
    2,
  )}\n`,
);
cpSync(path.join(ROOT, 'src/sdk/README.md'), path.join(PKG, 'README.md'));
const tarName = execFileSync('npm', ['pack', '--silent', '--pack-destination', path.join(ROOT, 'dist')], { cwd: PKG, encoding: 'utf8' })
  .trim()
  .split('\n')
  .pop()!;
const tarball = path.join(ROOT, 'dist', tarName);
if (!existsSync(tarball)) throw new Error(`npm pack wrote no ${tarball}`);
log(
  `index.js ${readFileSync(path.join(PKG, 'index.js')).length} B, index.d.ts ${dtsText.length} B, dependencies ${Object.keys(dependencies).join(', ')}`,
);
console.log(tarball);
