import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'data/**', 'node_modules/**', 'models/**/*.onnx'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    // The viewer runs in browsers; page.evaluate callbacks in browser tests too.
    files: ['src/client/**', 'e2e/**', 'bench/viewer.ts', 'scripts/screenshot.ts'],
    languageOptions: { globals: { ...globals.browser, ...globals.node } },
  },
  {
    // Migrations and the migrator work on any schema on purpose.
    files: ['migrations/**', 'src/server/db/migrate.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
