// Lint: the recommended JavaScript and TypeScript rules (no type-aware rules: `npm run typecheck`
// already runs the compiler in strict mode). Formatting is Prettier's (.prettierrc.json), not ESLint's.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'bundle/', 'coverage/', '.sandbox/', '.test-results/', 'node_modules/', 'test/support/controlplane/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        performance: 'readonly',
        URLSearchParams: 'readonly',
        Buffer: 'readonly',
        structuredClone: 'readonly',
        fetch: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        setImmediate: 'readonly',
        queueMicrotask: 'readonly',
      },
    },
    rules: {
      // Terminal escapes are matched on purpose (redaction, visible(), tests of colour output).
      'no-control-regex': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Procedure<P = any> is the catalogue's erased type; elsewhere `unknown` is the rule.
      '@typescript-eslint/no-explicit-any': 'error',
      eqeqeq: ['error', 'always'],
      'no-restricted-syntax': [
        'error',
        // Steps read each other's data through ctx.get(step) / ctx.find(step), typed (src/core/procedure.ts).
        {
          selector: "MemberExpression[object.property.name='state'][object.object.name='ctx']",
          message: 'read step data with ctx.get(step) or ctx.find(step)',
        },
      ],
    },
  },
  // Tests may reach into shapes loosely (fixtures, SDK responses).
  { files: ['test/**', 'bench/**'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  {
    files: ['**/*.cjs', 'bin/runbook.js'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable', __dirname: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
