// The import boundaries of eslint.config.js, fed to ESLint (its Node API, virtual files): a
// violation fails the lint, the same import where it is allowed passes.
import path from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const RULE = '@typescript-eslint/no-restricted-imports';

// The boundaries need no type information; without it virtual files (not in tsconfig) can be linted.
const eslint = new ESLint({
  cwd: ROOT,
  overrideConfig: [
    {
      files: ['**/*.ts'],
      languageOptions: { parserOptions: { project: false } },
      rules: { '@typescript-eslint/no-floating-promises': 'off' },
    },
  ],
});

async function lint(file: string, code: string): Promise<{ errors: number; boundary: string[] }> {
  const [result] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
  return {
    errors: result!.errorCount,
    boundary: result!.messages.filter((m) => m.ruleId === RULE).map((m) => m.message),
  };
}

describe('import boundaries (npm run lint)', () => {
  it.each([
    [
      'src/core/virtual.ts',
      "import { Cluster } from '../k8s/cluster.js';\nexport const c = Cluster;\n",
      /src\/core imports nothing else of ours/,
    ],
    [
      'src/core/virtual.ts',
      "import type { Logger } from '../log/logger.js';\nexport type L = Logger;\n",
      /src\/core imports nothing else of ours/,
    ],
    [
      'src/coordinator/virtual.ts',
      "import { startSimCluster } from '../../testbed/sim/cluster.js';\nexport const s = startSimCluster;\n",
      /must not import the testbed/,
    ],
    [
      'src/serve/virtual.ts',
      "import { startTestbed } from '@airflow-downgrade-guard/testbed/start.js';\nexport const s = startTestbed;\n",
      /must not import the testbed/,
    ],
    [
      'src/cli/commands/virtual.ts',
      "import { waitFor } from '../../../test/e2e/harness.js';\nexport const w = waitFor;\n",
      /must not import the testbed \(the simulated cluster, the demo, the benchmarks, the testbed starter\) or the tests/,
    ],
    [
      'src/serve/virtual.ts',
      "import { median } from '../../testbed/bench/stats.js';\nexport const m = median;\n",
      /benchmarks/,
    ],
    [
      'src/core/virtual.ts',
      "import type { SimCluster } from '../../testbed/sim/cluster.js';\nexport type S = SimCluster;\n",
      /must not import the testbed/,
    ],
    [
      'testbed/sim/virtual.ts',
      "import { waitFor } from '../../test/e2e/harness.js';\nexport const w = waitFor;\n",
      /the testbed must not import the tests/,
    ],
    [
      'src/serve/admission-worker.ts',
      "import { Coordinator } from '../coordinator/coordinator.js';\nexport const c = Coordinator;\n",
      /must not load coordinator code/,
    ],
    [
      'src/serve/admission-worker.ts',
      "import { Cluster } from '../k8s/cluster.js';\nexport const c = Cluster;\n",
      /must not load coordinator code/,
    ],
    [
      'src/serve/admission-worker.ts',
      "import { generateCa } from '../certs/generate.js';\nexport const g = generateCa;\n",
      /admission worker loads only src\/core, src\/webhook, src\/metrics, src\/log/,
    ],
    [
      'src/webhook/virtual.ts',
      "import { createAuditLog } from '../audit/log.js';\nexport const a = createAuditLog;\n",
      /must not load coordinator code/,
    ],
    [
      'src/coordinator/steps/virtual.ts',
      "import { Cluster } from '../../k8s/cluster.js';\nexport const c = Cluster;\n",
      /a coordinator step uses only its StepContext/,
    ],
    [
      'src/coordinator/steps/virtual.ts',
      "import { WorkloadGateway } from '../workloads.js';\nexport const w = WorkloadGateway;\n",
      /a coordinator step uses only its StepContext/,
    ],
    [
      'src/coordinator/steps/virtual.ts',
      "import { projectWorkload } from '../release-view.js';\nexport const p = projectWorkload;\n",
      /a coordinator step uses only its StepContext/,
    ],
  ])('%s: %s fails', async (file, code, message) => {
    const result = await lint(file, code);
    expect(result.errors).toBeGreaterThan(0);
    expect(result.boundary.some((m) => message.test(m))).toBe(true);
  });

  it.each([
    [
      'src/core/virtual.ts',
      "import { parseAirflowVersion } from './versions.js';\nexport const p = parseAirflowVersion;\n",
    ],
    ['src/coordinator/virtual.ts', "import { Cluster } from '../k8s/cluster.js';\nexport const c = Cluster;\n"],
    [
      'src/serve/admission-worker.ts',
      "import { reviewAdmission } from '../core/review.js';\nimport type { Cluster } from '../k8s/cluster.js';\nexport const r = reviewAdmission;\nexport type C = Cluster;\n",
    ],
    [
      'src/coordinator/steps/virtual.ts',
      "import { belongsTo } from '../membership.js';\nimport type { PodRecord } from '../release-view.js';\nimport type { ExecOutcome } from '../../k8s/exec.js';\nexport const b = belongsTo;\nexport type P = [PodRecord, ExecOutcome];\n",
    ],
    ['testbed/sim/virtual.ts', "import { median } from '../bench/stats.js';\nexport const m = median;\n"],
    ['testbed/demo/virtual.ts', "import { Cluster } from '../../src/k8s/cluster.js';\nexport const c = Cluster;\n"],
    [
      'test/virtual.test.ts',
      "import { startSimCluster } from '../testbed/sim/cluster.js';\nexport const s = startSimCluster;\n",
    ],
  ])('%s: an allowed import passes', async (file, code) => {
    expect(await lint(file, code)).toEqual({ errors: 0, boundary: [] });
  });
});
