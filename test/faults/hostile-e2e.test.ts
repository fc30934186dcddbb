// Hostile version strings through the real guard: image tags and the version annotation carrying
// shell syntax reach the cluster (admitted, held or refused), yet exec only ever receives the
// fixed argv, only in pods of the release being downgraded.
import { afterAll, describe, expect, it } from 'vitest';
import { ANNOTATIONS } from '../../src/core/config.js';
import { startE2E, type E2E } from '../e2e/harness.js';
import { SMUGGLED } from './fuzz.js';
import {
  ALLOWED_COMMANDS,
  classify,
  head,
  downgradeRelease,
  recordExecs,
  releaseSpec,
  saveCounts,
  waitTerminal,
} from './support.js';

let e2e: E2E | undefined;
afterAll(async () => {
  await e2e?.stop();
});

describe('hostile versions through the real guard', () => {
  it('smuggled shell syntax never reaches exec; a real downgrade afterwards runs only the fixed argv', async () => {
    e2e = await startE2E();
    const spec = releaseSpec();
    await e2e.installRelease(spec);
    const execs = recordExecs(e2e);
    await e2e.startGuard();
    const answers: Record<string, number> = {};
    const name = `${spec.release}-triggerer`;
    const path = `/apis/apps/v1/namespaces/${spec.namespace}/deployments/${name}`;
    for (const hostile of SMUGGLED.slice(0, 12)) {
      for (const body of [
        { spec: { template: { spec: { containers: [{ name: 'triggerer', image: `apache/airflow:${hostile}` }] } } } },
        { metadata: { annotations: { [ANNOTATIONS.airflowVersion]: hostile } } },
      ]) {
        const answer = await e2e.admin.rest
          .request('PATCH', `${path}?dryRun=All`, { body, contentType: 'application/strategic-merge-patch+json' })
          .then(
            () => 'admitted',
            (e: { code?: number }) => `refused ${e.code ?? '?'}`,
          );
        answers[answer] = (answers[answer] ?? 0) + 1;
      }
    }
    saveCounts('hostile-e2e', { 'hostile dry-run changes': SMUGGLED.slice(0, 12).length * 2, ...answers });
    await new Promise((r) => setTimeout(r, 500));
    expect(execs).toEqual([]);
    expect(e2e.operation(spec.namespace, spec.release)).toBeUndefined();

    // Forged hold annotations steering the downgrade to an ancient revision: no operation, no exec.
    const forged = {
      [ANNOTATIONS.operation]: 'dg-0000000000000bad',
      [ANNOTATIONS.fromVersion]: '3.1.0',
      [ANNOTATIONS.toVersion]: '3.0.2',
      [ANNOTATIONS.fromRevision]: head('3.1.0'),
      [ANNOTATIONS.toRevision]: head('2.0.0'),
      [ANNOTATIONS.hold]: JSON.stringify({ kind: 'Deployment', changes: [{ path: '/spec/paused', existed: false }] }),
    };
    await e2e.admin.rest.request('PATCH', path, {
      body: { metadata: { annotations: forged }, spec: { paused: true } },
      contentType: 'application/merge-patch+json',
    });
    // The webhook may strip the forged hold or the coordinator refuses it (openingProblem); either way nothing runs.
    await new Promise((r) => setTimeout(r, 1500));
    expect(e2e.operation(spec.namespace, spec.release)).toBeUndefined();
    expect(execs).toEqual([]);
    await e2e.admin.rest.request('PATCH', path, {
      body: {
        metadata: { annotations: Object.fromEntries(Object.keys(forged).map((k) => [k, null])) },
        spec: { paused: false },
      },
      contentType: 'application/merge-patch+json',
    });

    await downgradeRelease(e2e, spec);
    const op = await waitTerminal(e2e, spec);
    expect((await classify(e2e, spec, op)).outcome).toBe('completed');
    expect(execs.length).toBeGreaterThan(0);
    for (const call of execs) {
      expect(ALLOWED_COMMANDS).toContain(call.command);
      expect(call.pod.startsWith(`${spec.release}-`)).toBe(true);
    }
    // The guard's own exec calls, as the API server saw them: pods of this release's namespace only.
    const execRequests = e2e.sim.api.requests.filter((r) => r.subresource === 'exec');
    expect(execRequests.length).toBeGreaterThan(0);
    for (const r of execRequests) {
      expect(r.namespace).toBe(spec.namespace);
      expect(r.name?.startsWith(`${spec.release}-`)).toBe(true);
    }
  });
});
