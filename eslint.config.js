// `npm run lint`: typescript-eslint's recommended rules, promises that nobody awaits or handles,
// and the import boundaries of the product:
//   - src/core imports nothing else of ours (the pure, I/O-free core);
//   - no product module (src/) imports the testbed (testbed/: the simulated cluster, the demo, the
//     benchmarks and the testbed starter, an npm workspace of its own) or the tests;
//   - the admission worker (src/serve/admission-worker.ts) and every module it loads run no
//     coordinator code: the worker may import only from the folders listed in WORKER_FOLDERS, and
//     those folders import nothing from the coordinator's side (type-only imports load nothing);
//   - a coordinator step (src/coordinator/steps) loads no cluster, database or coordinator adapter:
//     it uses only its StepContext, so it runs in-process against an in-memory context.
//   - the testbed imports the product, never the tests (it runs without them: npm run sim|demo|bench).
// The boundaries use @typescript-eslint/no-restricted-imports: it comes with typescript-eslint
// (no further plugin or import resolver), and it tells `import type` apart. Its patterns match the
// import specifier gitignore-style (`**/testbed/**`: a path through a folder named testbed) or by regex.
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

const PRODUCT = ['src/**/*.ts'];
/** What the admission worker loads (besides its own file and its message types). */
const WORKER_FOLDERS = ['core', 'webhook', 'metrics', 'log'];
const WORKER_FILES = [
  'src/serve/admission-worker.ts',
  'src/serve/admission-protocol.ts',
  ...WORKER_FOLDERS.map((f) => `src/${f}/**/*.ts`),
];
/** The coordinator's side of serve: what the worker thread exists to keep away from admissions. */
const COORDINATOR_SIDE = ['coordinator', 'k8s', 'db', 'audit'];

// By path (`../../testbed/sim/cluster.js`) or by the workspace's package name.
const testInfrastructure = {
  group: [
    '**/testbed',
    '**/testbed/**',
    '@airflow-downgrade-guard/testbed',
    '@airflow-downgrade-guard/testbed/**',
    '**/test/**',
  ],
  message:
    'product code must not import the testbed (the simulated cluster, the demo, the benchmarks, the testbed starter) or the tests',
};
const tests = { group: ['**/test/**'], message: 'the testbed must not import the tests: it runs without them' };
const coordinatorCode = {
  group: COORDINATOR_SIDE.flatMap((f) => [`**/${f}`, `**/${f}/**`]),
  allowTypeImports: true,
  message: 'the admission worker and what it loads must not load coordinator code (see eslint.config.js)',
};
const outsideWorkerFolders = {
  regex: `^\\.\\./(?!(${WORKER_FOLDERS.join('|')})/)`,
  allowTypeImports: true,
  message: `the admission worker loads only ${WORKER_FOLDERS.map((f) => `src/${f}`).join(', ')} and its message types`,
};
// src/core is one flat folder: every `../` leaves it.
const outsideCore = {
  regex: '^\\.\\./',
  message: 'src/core imports nothing else of ours: it is the pure, I/O-free core',
};

// The coordinator's modules that do I/O or own its state, and the adapter folders behind them.
const STEP_FORBIDDEN = ['coordinator', 'workloads', 'exec-pods', 'metadata-db', 'lease', 'event-queue', 'release-view'];
const stepAdapters = {
  regex: `^(\\.\\./\\.\\./(k8s|db|audit)/|\\.\\./(${STEP_FORBIDDEN.join('|')})\\.js$)`,
  allowTypeImports: true,
  message:
    'a coordinator step uses only its StepContext (steps/context.ts): no cluster, database or coordinator adapter',
};

/** Later config objects replace a rule's options for the files they match, so each one lists every boundary of its files. */
const boundaries = (...patterns) => ({ '@typescript-eslint/no-restricted-imports': ['error', { patterns }] });

export default defineConfig(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'coverage/**',
      '.tmp/**',
      'test/faults/.results/**',
      '**/*.js',
      '**/*.mjs',
      '**/*.cjs',
    ],
  },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      // `_` marks a parameter or binding kept for its position (express's four-parameter error handler, tuples).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
      // A `let` that closures read before its one assignment is late binding, not a missed const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  // Tests poke into untyped API JSON (admission reviews, stored objects) where `any` is the honest type.
  { files: ['test/**/*.ts'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  { files: PRODUCT, rules: boundaries(testInfrastructure) },
  { files: ['testbed/**/*.ts'], rules: boundaries(tests) },
  { files: WORKER_FILES, rules: boundaries(testInfrastructure, coordinatorCode) },
  {
    files: ['src/serve/admission-worker.ts'],
    rules: boundaries(testInfrastructure, coordinatorCode, outsideWorkerFolders),
  },
  { files: ['src/core/**/*.ts'], rules: boundaries(testInfrastructure, coordinatorCode, outsideCore) },
  { files: ['src/coordinator/steps/**/*.ts'], rules: boundaries(testInfrastructure, stepAdapters) },
);
