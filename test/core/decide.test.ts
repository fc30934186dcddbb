import fastJsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { parseAdmissionReview } from '../../src/core/admission.js';
import { DEFAULT_CONFIG, parseGuardConfig, type GuardConfig } from '../../src/core/config.js';
import { decide, operationIdFor, type Decision, type ReleaseState } from '../../src/core/decide.js';
import { HOLD_PARTITION, type JsonPatchOperation } from '../../src/core/hold.js';
import { admissionReview, chartWorkload, versionChange, type Kind } from '../fixtures/admission/builders.js';

const { applyPatch } = fastJsonPatch;

function run(review: unknown, state: ReleaseState = {}, config: GuardConfig = DEFAULT_CONFIG): Decision {
  return decide(parseAdmissionReview(review), state, config);
}

function apply<T>(object: T, patch: JsonPatchOperation[]): T {
  return applyPatch(structuredClone(object), patch as any, true, false).newDocument as T;
}

const scheduler = { kind: 'Deployment', component: 'scheduler' } as const;
const strict = parseGuardConfig({ strict: true });

describe('pass-through', () => {
  it('DELETE, subresources and other kinds are not checked', () => {
    const obj = chartWorkload({ ...scheduler, version: '3.0.2' });
    expect(run(admissionReview({ operation: 'DELETE', object: null, oldObject: obj })).kind).toBe('pass-through');
    const scale = admissionReview({ operation: 'UPDATE', object: obj, oldObject: obj, subResource: 'scale' });
    expect(run(scale)).toMatchObject({ kind: 'pass-through', allowed: true, patch: [] });
    const pod = admissionReview({
      operation: 'CREATE',
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' } },
    }) as any;
    pod.request.kind = { group: '', version: 'v1', kind: 'Pod' };
    expect(run(pod).kind).toBe('pass-through');
    const v1beta1 = versionChange(scheduler, '3.1.0', '3.0.2') as any;
    v1beta1.request.kind.version = 'v1beta2';
    expect(run(v1beta1).kind).toBe('pass-through');
  });

  it('a Deployment that is not Airflow', () => {
    const d = run(versionChange({ kind: 'Deployment', component: 'nginx', scheme: 'none' }, '3.1.0', '3.0.2'));
    expect(d).toMatchObject({ kind: 'pass-through', allowed: true, reason: 'no Airflow release labels', warnings: [] });
  });

  it.each(['pgbouncer', 'statsd', 'redis', 'flower', 'airflow-cleanup-pods'])(
    'component %s (no metadata DB)',
    (component) => {
      const review = admissionReview({
        operation: 'UPDATE',
        oldObject: chartWorkload({
          kind: 'Deployment',
          component,
          image: 'apache/airflow:airflow-pgbouncer-2025.03.05-1.23.1',
          stored: true,
        }),
        object: chartWorkload({
          kind: 'Deployment',
          component,
          image: 'apache/airflow:airflow-pgbouncer-2024.01.19-1.21.0',
          stored: true,
        }),
      });
      expect(run(review, { runningVersion: '3.1.0' })).toMatchObject({ kind: 'pass-through', patch: [], warnings: [] });
    },
  );

  it('an unrecognised component without an Airflow version', () => {
    const review = versionChange(
      { kind: 'CronJob', component: 'api-server-rollout-restart', image: 'bitnami/kubectl:1.31' },
      'x',
      'y',
    );
    expect(run(review).kind).toBe('pass-through');
  });
});

describe('version comparison by schema head', () => {
  it.each([
    ['3.0.3', '3.0.2', 'downgrade'],
    ['3.1.0', '3.0.2', 'downgrade'],
    ['3.2.0', '3.1.8', 'downgrade'],
    ['2.10.5', '2.9.3', 'downgrade'],
    ['3.0.2', '3.0.1', 'same-head'],
    ['2.10.5', '2.10.4', 'same-head'],
    ['3.1.7', '3.1.0', 'same-head'],
    ['2.11.0', '2.10.3', 'same-head'],
    ['3.0.1', '3.0.2', 'same-head'],
    ['3.0.2', '3.1.0', 'forward'],
    ['2.10.5', '3.0.2', 'forward'],
    ['3.1.0', '3.2.0rc1', 'forward'],
    ['3.3.2', '3.4.0', 'forward'],
    ['3.4.0', '3.3.2', 'downgrade'],
    ['3.1.0', '3.1.0rc1', 'unknown-version'],
    ['3.0.2', '3.0.2', 'no-version-change'],
  ])('%s -> %s: %s', (from, to, kind) => {
    expect(run(versionChange(scheduler, from, to)).kind).toBe(kind);
  });

  it('an image variant of the same version is no version change', () => {
    const review = admissionReview({
      operation: 'UPDATE',
      oldObject: chartWorkload({ ...scheduler, image: 'apache/airflow:3.0.2-python3.11', stored: true }),
      object: chartWorkload({ ...scheduler, image: 'apache/airflow:slim-3.0.2-python3.12', stored: true }),
    });
    expect(run(review)).toMatchObject({ kind: 'no-version-change', allowed: true, patch: [] });
  });
});

describe('downgrade holds the rollout', () => {
  it.each([
    ['Deployment', 'scheduler', '/spec/paused', true],
    ['StatefulSet', 'worker', '/spec/updateStrategy/rollingUpdate/partition', HOLD_PARTITION],
    ['CronJob', 'database-cleanup', '/spec/suspend', true],
  ] as const)('UPDATE of a %s (%s)', (kind, component, path, value) => {
    const review = versionChange({ kind: kind as Kind, component, replicas: 2 }, '3.1.0', '3.0.2') as any;
    const d = run(review);
    expect(d).toMatchObject({ kind: 'downgrade', allowed: true, sideEffect: 'open-operation', dryRun: false });
    expect(d.from).toEqual({ version: '3.1.0', revision: 'cc92b33c6709', source: 'oldObject' });
    expect(d.to).toEqual({ version: '3.0.2', revision: '29ce7909c52b', source: 'object' });
    expect(d.operation).toMatchObject({
      fromVersion: '3.1.0',
      toVersion: '3.0.2',
      fromRevision: 'cc92b33c6709',
      toRevision: '29ce7909c52b',
    });
    expect(d.patch).toContainEqual({ op: 'add', path, value });
    const held = apply(review.request.object, d.patch) as any;
    expect(held.metadata.annotations['airflow-downgrade-guard/operation']).toBe(d.operation?.id);
    expect(d.plan?.argv).toEqual(['airflow', 'db', 'downgrade', '--to-revision', '29ce7909c52b', '--yes']);
    expect(d.warnings[0]).toMatch(
      /DOWNGRADE of release airflow from 3\.1\.0 to 3\.0\.2 \(schema cc92b33c6709 -> 29ce7909c52b\)/,
    );
    expect(d.warnings.join('\n')).toMatch(/airflow db downgrade --to-revision 29ce7909c52b --yes/);
    expect(d.warnings.join('\n')).toMatch(/backup/);
  });

  it('the pre-upgrade migration Job CREATE takes the current version from the release state', () => {
    const job = chartWorkload({ kind: 'Job', component: 'run-airflow-migrations', version: '3.0.2' });
    const d = run(admissionReview({ operation: 'CREATE', object: job }), { runningVersion: '3.1.0' });
    expect(d.kind).toBe('downgrade');
    expect(d.from).toEqual({ version: '3.1.0', revision: 'cc92b33c6709', source: 'runningVersion' });
    expect(d.patch).toContainEqual({ op: 'add', path: '/spec/suspend', value: true });
  });

  it('a StatefulSet CREATE is held at 0 replicas (a partition would not stop its first pods)', () => {
    const sts = chartWorkload({ kind: 'StatefulSet', component: 'triggerer', version: '3.0.2', replicas: 2 });
    const d = run(admissionReview({ operation: 'CREATE', object: sts }), { runningVersion: '3.1.0' });
    expect(d.patch).toContainEqual({ op: 'add', path: '/spec/replicas', value: 0 });
  });

  it('or from the database revision', () => {
    const job = chartWorkload({ kind: 'Job', component: 'run-airflow-migrations', version: '3.0.2' });
    const review = admissionReview({ operation: 'CREATE', object: job });
    expect(run(review, { dbRevision: 'cc92b33c6709' })).toMatchObject({
      kind: 'downgrade',
      from: { revision: 'cc92b33c6709', source: 'dbRevision' },
    });
    expect(run(review, { dbRevision: '29ce7909c52b' }).kind).toBe('same-head');
    expect(run(review, { dbRevision: 'e959f08ac86c' }).kind).toBe('forward');
    expect(run(review, { dbRevision: 'abcdef123456' }).kind).toBe('unknown-version');
  });

  it('on UPDATE the old object wins over the release state', () => {
    expect(run(versionChange(scheduler, '3.0.2', '3.0.1'), { runningVersion: '3.1.0' }).kind).toBe('same-head');
  });

  it('every object of one upgrade joins the same deterministic operation id', () => {
    const deployment = run(versionChange(scheduler, '3.1.0', '3.0.2'));
    const sts = run(versionChange({ kind: 'StatefulSet', component: 'worker' }, '3.1.0', '3.0.2'));
    const job = run(
      admissionReview({
        operation: 'CREATE',
        object: chartWorkload({ kind: 'Job', component: 'run-airflow-migrations', version: '3.0.2' }),
      }),
      { dbRevision: 'cc92b33c6709' },
    );
    expect(deployment.operation?.id).toBe(operationIdFor('airflow', 'airflow', 'cc92b33c6709', '29ce7909c52b'));
    expect(sts.operation?.id).toBe(deployment.operation?.id);
    expect(job.operation?.id).toBe(deployment.operation?.id);
    const otherRelease = run(versionChange({ ...scheduler, release: 'other' }, '3.1.0', '3.0.2'));
    expect(otherRelease.operation?.id).not.toBe(deployment.operation?.id);
    expect(deployment.operation?.id).toMatch(/^dg-[0-9a-f]{16}$/);
  });

  const planState: ReleaseState = {
    execPod: { name: 'airflow-api-server-7d9f8c6b5-x2x8q', component: 'api-server' },
    workloads: [
      { kind: 'Deployment', name: 'airflow-scheduler', component: 'scheduler', replicas: 2, version: '3.1.0' },
      { kind: 'StatefulSet', name: 'airflow-worker', component: 'worker', replicas: 3 },
    ],
  };

  it('the plan follows the configured order: drain-first (the default) drains, then runs the downgrade in a runner pod', () => {
    const d = run(versionChange({ kind: 'Deployment', component: 'api-server' }, '3.1.0', '3.0.2'), planState);
    expect(d.plan?.order).toBe('drain-first');
    expect(d.warnings[0]).toMatch(/^airflow-downgrade-guard: DOWNGRADE of release .* from 3\.1\.0 to 3\.0\.2/);
    expect(d.warnings.slice(1, 4)).toEqual([
      'Plan (order drain-first): first drain (scale to 0, suspend CronJobs): deployment/airflow-scheduler (2), statefulset/airflow-worker (3).',
      'Then run "airflow db downgrade --to-revision 29ce7909c52b --yes" (Airflow 3.0.2) in a short-lived runner pod of 3.1.0, check alembic_version, and release the hold so 3.0.2 starts on the matching schema.',
      'Estimated outage: 2 workloads (5 pods) stop at the drain, before the downgrade, until the 3.0.2 pods start and are Ready; no pod runs on a schema it does not match.',
    ]);
    expect(d.warnings.join('\n')).not.toContain('airflow-api-server-7d9f8c6b5-x2x8q');
  });

  it('order downgrade-first: the downgrade runs in a serving pod, then the drain', () => {
    const d = run(
      versionChange({ kind: 'Deployment', component: 'api-server' }, '3.1.0', '3.0.2'),
      planState,
      parseGuardConfig({ order: 'downgrade-first' }),
    );
    expect(d.plan?.order).toBe('downgrade-first');
    expect(d.warnings[1]).toBe(
      'Plan (order downgrade-first): run "airflow db downgrade --to-revision 29ce7909c52b --yes" (Airflow 3.0.2) in pod airflow-api-server-7d9f8c6b5-x2x8q (api-server, 3.1.0), then check alembic_version.',
    );
    expect(d.warnings[2]).toBe(
      'Then drain (scale to 0, suspend CronJobs): deployment/airflow-scheduler (2), statefulset/airflow-worker (3).',
    );
  });

  it('describes the plan when workloads and the exec pod are known', () => {
    const d = run(
      versionChange({ kind: 'Deployment', component: 'api-server' }, '3.1.0', '3.0.2'),
      {
        execPod: { name: 'airflow-api-server-7d9f8c6b5-x2x8q', component: 'api-server' },
        workloads: [
          { kind: 'Deployment', name: 'airflow-scheduler', component: 'scheduler', replicas: 2, version: '3.1.0' },
          { kind: 'StatefulSet', name: 'airflow-worker', component: 'worker', replicas: 3 },
          { kind: 'Deployment', name: 'airflow-pgbouncer', component: 'pgbouncer', replicas: 1 },
          { kind: 'Deployment', name: 'bad name; rm -rf /', component: 'scheduler', replicas: 1 },
        ],
      },
      parseGuardConfig({ order: 'downgrade-first' }),
    );
    const text = d.warnings.join('\n');
    expect(text).toMatch(/in pod airflow-api-server-7d9f8c6b5-x2x8q \(api-server, 3\.1\.0\)/);
    expect(text).toMatch(/deployment\/airflow-scheduler \(2\), statefulset\/airflow-worker \(3\)/);
    expect(text).not.toMatch(/pgbouncer|rm -rf/);
    expect(d.plan?.drain.map((w) => w.name)).toEqual(['airflow-scheduler', 'airflow-worker']);
    expect(d.plan?.outage).toEqual({ workloads: 2, pods: 5 });
    expect(text).toMatch(
      /Estimated outage: 2 workloads \(5 pods\) stop at the drain, after the downgrade and its check, until the 3\.0\.2 pods start and are Ready; 3\.1\.0 keeps serving while the downgrade runs\./,
    );
  });

  it('states the outage shape even when the release workloads are not known', () => {
    const d = run(versionChange(scheduler, '3.1.0', '3.0.2'));
    expect(d.plan?.outage).toEqual({ workloads: 0, pods: 0 });
    expect(d.warnings).toContainEqual(
      expect.stringMatching(/^Estimated outage: every database-using pod of the release stops at the drain/),
    );
  });

  it('does not put an invalid exec pod name or release state into messages', () => {
    const job = chartWorkload({ kind: 'Job', component: 'run-airflow-migrations', version: '3.0.2' });
    const d = run(admissionReview({ operation: 'CREATE', object: job }), {
      runningVersion: '3.1.0; curl evil',
      dbRevision: 'cc92b33c6709',
      execPod: { name: 'pod$(id)', component: 'api-server' },
    });
    expect(d.kind).toBe('downgrade');
    expect(d.plan?.execPod).toBeUndefined();
    expect(JSON.stringify(d)).not.toMatch(/curl|\$\(id\)/);
  });

  it('keeps long drain lists within the warning length', () => {
    const workloads = Array.from({ length: 40 }, (_, i) => ({
      kind: 'Deployment',
      name: `airflow-worker-set-number-${i}`,
      component: `worker-set${i}`,
      replicas: 1,
    }));
    const d = run(versionChange(scheduler, '3.1.0', '3.0.2'), { workloads });
    for (const w of d.warnings) expect(w.length).toBeLessThanOrEqual(256);
    expect(d.warnings.join('\n')).toMatch(/and \d+ more/);
  });

  it('Airflow 3 cannot go below 2.7.0: denied with a clear message', () => {
    const d = run(versionChange(scheduler, '3.0.2', '2.6.3'));
    expect(d).toMatchObject({ kind: 'unsupported-downgrade', allowed: false, patch: [] });
    expect(d.denial?.message).toMatch(/cannot downgrade the database below 2\.7\.0/);
    expect(run(versionChange(scheduler, '2.10.5', '2.6.3')).kind).toBe('downgrade');
  });

  it('below 3.0.0 warns that the FAB provider is needed', () => {
    const d = run(versionChange(scheduler, '3.0.2', '2.10.5'));
    expect(d.kind).toBe('downgrade');
    expect(d.warnings.join('\n')).toMatch(/FAB provider/);
    expect(run(versionChange(scheduler, '3.1.0', '3.0.2')).warnings.join('\n')).not.toMatch(/FAB/);
  });

  it('Bitnami and community chart workloads are guarded the same way', () => {
    const bitnami = admissionReview({
      operation: 'UPDATE',
      oldObject: chartWorkload({
        kind: 'Deployment',
        component: 'scheduler',
        scheme: 'bitnami',
        containerName: 'airflow-scheduler',
        image: 'bitnami/airflow:3.0.3-debian-12-r0',
        stored: true,
      }),
      object: chartWorkload({
        kind: 'Deployment',
        component: 'scheduler',
        scheme: 'bitnami',
        containerName: 'airflow-scheduler',
        image: 'bitnami/airflow:3.0.2-debian-12-r1',
        stored: true,
      }),
    });
    expect(run(bitnami).kind).toBe('downgrade');
    expect(
      run(versionChange({ kind: 'Deployment', component: 'web', scheme: 'community' }, '2.10.5', '2.9.3')).kind,
    ).toBe('downgrade');
  });

  it('an unrecognised component with an Airflow image is guarded', () => {
    expect(run(versionChange({ kind: 'Deployment', component: 'custom-sensor-runner' }, '3.1.0', '3.0.2')).kind).toBe(
      'downgrade',
    );
  });
});

describe('dry-run', () => {
  it('gets the same decision, patch and warnings, with no side effect', () => {
    const real = run(versionChange(scheduler, '3.1.0', '3.0.2'));
    const dry = run(versionChange(scheduler, '3.1.0', '3.0.2', { dryRun: true }));
    expect(dry.kind).toBe(real.kind);
    expect(dry.patch).toEqual(real.patch);
    expect(dry.operation).toEqual(real.operation);
    expect(dry.dryRun).toBe(true);
    expect(dry.sideEffect).toBe('none');
    expect(real.sideEffect).toBe('open-operation');
    expect(dry.warnings.slice(1)).toEqual(real.warnings.slice(1));
    expect(dry.warnings[0]).toMatch(/Dry run/);
  });
});

describe('trusted users and break-glass', () => {
  const guardSa = 'system:serviceaccount:airflow-downgrade-guard:airflow-downgrade-guard';
  const config = parseGuardConfig({ trustedUsernames: [guardSa] });

  it("the guard's own ServiceAccount passes untouched", () => {
    const d = run(versionChange(scheduler, '3.1.0', '3.0.2', { client: { username: guardSa } }), {}, config);
    expect(d).toMatchObject({ kind: 'trusted-user', allowed: true, patch: [], warnings: [] });
    expect(run(versionChange(scheduler, '3.1.0', '3.0.2'), {}, config).kind).toBe('downgrade');
  });

  it('an empty break-glass on a deeply nested object is checked as usual, not a crash', () => {
    const review = versionChange(
      { ...scheduler, annotations: { 'airflow-downgrade-guard/break-glass': '' } },
      '3.1.0',
      '3.0.2',
    ) as { request: { object: { spec: Record<string, unknown> } } };
    let nested: unknown = 'x';
    for (let i = 0; i < 20_000; i++) nested = i % 2 ? [nested] : { a: nested };
    review.request.object.spec.extra = nested;
    const d = run(review);
    expect(d.kind).toBe('downgrade');
    expect(d.warnings[0]).toMatch(/has no reason and is ignored/);
  });

  it('break-glass lets a named change through untouched and reports it', () => {
    const base = {
      ...scheduler,
      annotations: { 'airflow-downgrade-guard/break-glass': 'INC-4711 restore from backup' },
    };
    const d = run(versionChange(base, '3.1.0', '3.0.2'));
    expect(d).toMatchObject({
      kind: 'break-glass',
      allowed: true,
      patch: [],
      breakGlass: { reason: 'INC-4711 restore from backup' },
    });
    expect(d.warnings[0]).toMatch(/break-glass .*INC-4711/);
  });

  it('break-glass without a reason is ignored, and says so', () => {
    const base = { ...scheduler, annotations: { 'airflow-downgrade-guard/break-glass': '  ' } };
    const d = run(versionChange(base, '3.1.0', '3.0.2'));
    expect(d.kind).toBe('downgrade');
    expect(d.warnings[0]).toMatch(/has no reason and is ignored/);
  });
});

describe('unknown versions', () => {
  it('a moving tag is held for resolution by default, allowed with a warning by allow, denied in strict mode', () => {
    const review = admissionReview({
      operation: 'UPDATE',
      oldObject: chartWorkload({ ...scheduler, version: '3.1.0', stored: true }),
      object: chartWorkload({ ...scheduler, image: 'apache/airflow:latest', stored: true }),
    });
    expect(run(review)).toMatchObject({ kind: 'unknown-version', allowed: true, sideEffect: 'resolve-version' });
    const lax = run(review, {}, parseGuardConfig({ unknownVersion: 'allow' }));
    expect(lax).toMatchObject({ kind: 'unknown-version', allowed: true, patch: [] });
    expect(lax.warnings[0]).toMatch(/cannot tell the Airflow version of deployment\/airflow-scheduler: .*moving tag/);
    const denied = run(review, {}, strict);
    expect(denied).toMatchObject({ kind: 'unknown-version', allowed: false });
    expect(denied.denial).toEqual({
      code: 403,
      message: expect.stringMatching(/strict mode.*airflow-downgrade-guard\/airflow-version/),
    });
  });

  it('an unchanged unknown image is no version change, even in strict mode', () => {
    const review = admissionReview({
      operation: 'UPDATE',
      oldObject: chartWorkload({ ...scheduler, image: 'apache/airflow:latest', stored: true, replicas: 1 }),
      object: chartWorkload({ ...scheduler, image: 'apache/airflow:latest', stored: true, replicas: 3 }),
    });
    expect(run(review, {}, strict)).toMatchObject({ kind: 'no-version-change', allowed: true });
  });

  it('an unknown current version without release state is unknown; with state it decides', () => {
    const review = admissionReview({
      operation: 'UPDATE',
      oldObject: chartWorkload({ ...scheduler, image: 'apache/airflow:latest', stored: true }),
      object: chartWorkload({ ...scheduler, version: '3.0.2', stored: true }),
    });
    expect(run(review).kind).toBe('unknown-version');
    expect(run(review, {}, strict).allowed).toBe(false);
    expect(run(review, { runningVersion: '3.1.0' }).kind).toBe('downgrade');
  });

  it('a CREATE with no running version or database revision is a new install', () => {
    const job = chartWorkload({ kind: 'Job', component: 'run-airflow-migrations', version: '3.0.2' });
    expect(run(admissionReview({ operation: 'CREATE', object: job }))).toMatchObject({
      kind: 'install',
      allowed: true,
      patch: [],
    });
  });
});

describe('an open operation', () => {
  const operation = { id: 'dg-00112233aabbccdd', fromVersion: '3.1.0', toVersion: '3.0.2', phase: 'holding' };

  it('holds further objects of the release moving to its target (join-operation)', () => {
    const job = chartWorkload({ kind: 'Job', component: 'run-airflow-migrations', version: '3.0.2' });
    const d = run(admissionReview({ operation: 'CREATE', object: job }), { runningVersion: '3.1.0', operation });
    expect(d).toMatchObject({
      kind: 'join-operation',
      allowed: true,
      sideEffect: 'join-operation',
      operation: { id: operation.id, phase: 'holding' },
    });
    expect(d.patch).toContainEqual({ op: 'add', path: '/spec/suspend', value: true });
    expect(d.patch).toContainEqual({
      op: 'add',
      path: '/metadata/annotations/airflow-downgrade-guard~1operation',
      value: operation.id,
    });
  });

  it('a held object updated again keeps its hold, from its own annotations', () => {
    const first = versionChange(scheduler, '3.1.0', '3.0.2') as any;
    const d1 = run(first);
    const held = apply(first.request.object, d1.patch) as any;
    const again = structuredClone(held);
    again.spec.template.metadata.annotations = { 'kubectl.kubernetes.io/restartedAt': '2025-06-02T10:00:00Z' };
    const d2 = run(admissionReview({ operation: 'UPDATE', oldObject: held, object: again }));
    expect(d2).toMatchObject({ kind: 'join-operation', operation: { id: d1.operation?.id } });
    expect(apply(again, d2.patch).spec.paused).toBe(true);
  });

  it('a held object set back to the from-version is released (cancel-hold)', () => {
    const first = versionChange(scheduler, '3.1.0', '3.0.2') as any;
    const original = first.request.object;
    const d1 = run(first);
    const held = apply(original, d1.patch) as any;
    const back = structuredClone(held);
    back.spec.template.spec.containers[0].image = 'apache/airflow:3.1.0';
    const d2 = run(admissionReview({ operation: 'UPDATE', oldObject: held, object: back, client: 'kubectl-set' }));
    expect(d2).toMatchObject({ kind: 'cancel-hold', allowed: true, sideEffect: 'cancel-hold' });
    const released = apply(back, d2.patch) as any;
    expect(released.spec.paused).toBeUndefined();
    // Only the marker that tells the coordinator the object returned (it moves the schema forward if needed).
    const guardAnnotations = Object.entries(released.metadata.annotations).filter(([k]) =>
      k.startsWith('airflow-downgrade-guard/'),
    );
    expect(guardAnnotations).toEqual([['airflow-downgrade-guard/returned', d1.operation?.id]]);
    expect(d2.warnings[0]).toMatch(/hold is removed/);
    // Held again later: the marker goes with the new hold.
    const again = structuredClone(released);
    again.spec.template.spec.containers[0].image = 'apache/airflow:3.0.2';
    const d3 = run(admissionReview({ operation: 'UPDATE', oldObject: released, object: again, client: 'kubectl-set' }));
    const reheld = apply(again, d3.patch) as any;
    expect(reheld.metadata.annotations['airflow-downgrade-guard/returned']).toBeUndefined();
    expect(reheld.spec.paused).toBe(true);
  });

  it('an object at the from-version that was never held is decided as usual', () => {
    const d = run(versionChange({ kind: 'Deployment', component: 'triggerer' }, '3.1.0', '3.1.0'), { operation });
    expect(d.kind).toBe('no-version-change');
  });

  it('a change to a third version is refused until the operation ends', () => {
    const d = run(versionChange(scheduler, '3.1.0', '2.10.5'), { operation });
    expect(d).toMatchObject({ kind: 'conflicting-operation', allowed: false, denial: { code: 409 } });
    expect(d.denial?.message).toMatch(
      /under downgrade operation dg-00112233aabbccdd \(3\.1\.0 -> 3\.0\.2, phase holding\)/,
    );
  });

  it('an operation with invalid fields in the state is ignored', () => {
    const d = run(versionChange(scheduler, '3.1.0', '2.10.5'), { operation: { ...operation, id: 'DG $(id)' } });
    expect(d.kind).toBe('downgrade');
  });
});

describe('a workload the coordinator drained stays at 0 replicas', () => {
  const operation = { id: 'dg-00112233aabbccdd', fromVersion: '3.1.0', toVersion: '3.0.2', phase: 'drain' };
  const drainedKey = 'airflow-downgrade-guard/drained';

  function drained(kind: Kind, version: string, recorded: number): any {
    const obj = chartWorkload({ kind, component: 'scheduler', version, stored: true, replicas: 0 }) as any;
    obj.metadata.annotations[drainedKey] = JSON.stringify({ operation: operation.id, replicas: recorded });
    return obj;
  }

  // Helm and Argo send spec.replicas with every apply; kubectl set image keeps the live 0.
  it.each([
    ['Deployment', '3.0.2', 3, 'join-operation', { operation }, 3],
    ['Deployment', '3.0.2', 0, 'join-operation', { operation }, 2],
    ['StatefulSet', '3.0.2', 4, 'join-operation', { operation }, 4],
    ['Deployment', '3.0.2', 3, 'downgrade', { runningVersion: '3.0.2' }, 3],
    ['Deployment', '3.1.0', 5, 'no-version-change', { operation }, 5],
    ['Deployment', '3.1.1', 5, 'same-head', {}, 5],
  ] as const)(
    '%s update to %s asking %i replicas (%s) is patched to 0, recording the count',
    (kind, version, asked, decision, state, recorded) => {
      const oldObject = drained(kind, '3.1.0', 2);
      const object = chartWorkload({ kind, component: 'scheduler', version, stored: true, replicas: asked }) as any;
      object.metadata.annotations[drainedKey] = oldObject.metadata.annotations[drainedKey];
      const d = run(admissionReview({ operation: 'UPDATE', oldObject, object }), state as ReleaseState);
      expect(d).toMatchObject({ kind: decision, allowed: true });
      const after = apply(object, d.patch) as any;
      expect(after.spec.replicas).toBe(0);
      expect(JSON.parse(after.metadata.annotations[drainedKey])).toEqual({
        operation: operation.id,
        replicas: recorded,
      });
      if (asked > 0) expect(d.warnings.join('\n')).toMatch(/kept at 0 replicas, \d+ restored/);
    },
  );

  it('an update that dropped every annotation gets the drained record back', () => {
    const oldObject = drained('Deployment', '3.1.0', 2);
    const object = chartWorkload({
      kind: 'Deployment',
      component: 'scheduler',
      version: '3.1.0',
      stored: true,
      replicas: 1,
    }) as any;
    delete object.metadata.annotations;
    const d = run(admissionReview({ operation: 'UPDATE', oldObject, object }), { operation });
    const after = apply(object, d.patch) as any;
    expect(after.spec.replicas).toBe(0);
    expect(JSON.parse(after.metadata.annotations[drainedKey])).toEqual({ operation: operation.id, replicas: 1 });
  });

  it('an update that keeps 0 and the record is left as it is; undrained workloads and forward changes are not touched', () => {
    const oldObject = drained('Deployment', '3.1.0', 2);
    const unchanged = structuredClone(oldObject);
    unchanged.spec.template.metadata.annotations = { 'kubectl.kubernetes.io/restartedAt': '2025-06-02T10:00:00Z' };
    expect(run(admissionReview({ operation: 'UPDATE', oldObject, object: unchanged }), { operation }).patch).toEqual(
      [],
    );
    const plain = run(versionChange({ kind: 'Deployment', component: 'triggerer', replicas: 2 }, '3.1.0', '3.1.1'));
    expect(plain.patch).toEqual([]);
    const forward = chartWorkload({
      kind: 'Deployment',
      component: 'scheduler',
      version: '3.2.0',
      stored: true,
      replicas: 1,
    });
    expect(run(admissionReview({ operation: 'UPDATE', oldObject, object: forward })).kind).toBe('forward');
  });
});

describe('a return to the from-version after a finished downgrade', () => {
  const lastOperation = { id: 'dg-0123456789abcdef', fromVersion: '3.1.0', toVersion: '3.0.2', phase: 'done' };

  it('is held for a return operation (helm rollback brings no migration Job)', () => {
    const review = versionChange(scheduler, '3.0.2', '3.1.0');
    const d = run(review, { lastOperation, dbRevision: '29ce7909c52b' });
    expect(d).toMatchObject({
      kind: 'return',
      allowed: true,
      sideEffect: 'open-operation',
      operation: { id: lastOperation.id, fromVersion: '3.1.0', toVersion: '3.0.2' },
    });
    expect(d.warnings[0]).toMatch(
      /^airflow-downgrade-guard: RETURN of release .* to 3\.1\.0 after downgrade dg-0123456789abcdef/,
    );
    expect(d.warnings[1]).toContain('airflow db migrate --to-revision cc92b33c6709');
    const held = apply(parseAdmissionReview(review).object as { spec: { paused?: boolean } }, d.patch);
    expect(held.spec.paused).toBe(true);
  });

  it('a dry run says so and has no side effect', () => {
    const review = versionChange(scheduler, '3.0.2', '3.1.0', { dryRun: true });
    expect(run(review, { lastOperation })).toMatchObject({ kind: 'return', sideEffect: 'none' });
  });

  it.each([
    ['another forward version', '3.0.2', '3.2.0', { lastOperation }],
    [
      'a forward move after an aborted operation',
      '3.0.2',
      '3.1.0',
      { lastOperation: { ...lastOperation, phase: 'aborted' } },
    ],
    ['a database already moved on', '3.0.2', '3.1.0', { lastOperation, dbRevision: 'cc92b33c6709' }],
    ['a move from another version', '2.10.5', '3.1.0', { lastOperation }],
    ['no finished operation', '3.0.2', '3.1.0', {}],
  ])('%s is an ordinary forward upgrade', (_what, from, to, state) => {
    expect(run(versionChange(scheduler, from, to), state as ReleaseState).kind).toBe('forward');
  });

  it('while the return operation is open, the rest of the rollback joins it; the downgrade target is refused', () => {
    const operation = {
      id: 'dg-fedcba9876543210',
      fromVersion: '3.1.0',
      toVersion: '3.0.2',
      phase: 'forward',
      returnOf: lastOperation.id,
    };
    expect(
      run(versionChange({ kind: 'Deployment', component: 'triggerer' }, '3.0.2', '3.1.0'), { operation }),
    ).toMatchObject({ kind: 'join-operation', operation: { id: operation.id } });
    expect(
      run(versionChange({ kind: 'Deployment', component: 'triggerer' }, '3.1.0', '3.0.2'), { operation }),
    ).toMatchObject({ kind: 'conflicting-operation', allowed: false });
  });
});

describe('a downgrade after an aborted operation', () => {
  it('gets an id of its own, the same for every object of the rollout', () => {
    const derived = run(versionChange(scheduler, '3.1.0', '3.0.2')).operation!.id;
    const lastOperation = { id: derived, fromVersion: '3.1.0', toVersion: '3.0.2', phase: 'aborted' };
    const first = run(versionChange(scheduler, '3.1.0', '3.0.2'), { lastOperation });
    const second = run(versionChange({ kind: 'Deployment', component: 'triggerer' }, '3.1.0', '3.0.2'), {
      lastOperation,
    });
    expect(first).toMatchObject({ kind: 'downgrade', sideEffect: 'open-operation' });
    expect(first.operation!.id).not.toBe(derived);
    expect(first.operation!.id).toMatch(/^dg-[0-9a-f]{16}$/);
    expect(second.operation!.id).toBe(first.operation!.id);
    // After any other end the coordinator gives the operation a fresh id itself.
    expect(
      run(versionChange(scheduler, '3.1.0', '3.0.2'), { lastOperation: { ...lastOperation, phase: 'done' } }).operation!
        .id,
    ).toBe(derived);
  });
});
