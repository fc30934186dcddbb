import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, parseGuardConfig } from '../../src/core/config.js';
import type { ReleaseState } from '../../src/core/decide.js';
import { decodePatch } from '../../src/core/response.js';
import { BODY_LIMIT_BYTES, createAdmissionApp, type DecisionRecord } from '../../src/webhook/app.js';
import { createLogger } from '../../src/log/logger.js';

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../fixtures/admission/${name}`, import.meta.url), 'utf8'));

function appWith(state: ReleaseState = {}, extra: Partial<Parameters<typeof createAdmissionApp>[0]> = {}) {
  const records: DecisionRecord[] = [];
  const app = createAdmissionApp({
    config: DEFAULT_CONFIG,
    releaseState: () => state,
    onDecision: (r) => records.push(r),
    ...extra,
  });
  return { app, records };
}

describe('POST /mutate', () => {
  it('holds a Helm downgrade of the scheduler and reports the decision', async () => {
    const { app, records } = appWith();
    const res = await request(app)
      .post('/mutate')
      .send(fixture('helm-upgrade-scheduler-3.1.0-to-3.0.2.json'))
      .expect(200);
    expect(res.body).toMatchObject({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid: '5c1f2d0a-1b2c-4d3e-8f90-000000000001', allowed: true, patchType: 'JSONPatch' },
    });
    expect(decodePatch(res.body.response)).toContainEqual({ op: 'add', path: '/spec/paused', value: true });
    expect(res.body.response.warnings[0]).toMatch(/DOWNGRADE/);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      uid: '5c1f2d0a-1b2c-4d3e-8f90-000000000001',
      user: 'kubernetes-admin',
      groups: ['kubeadm:cluster-admins', 'system:authenticated'],
      operation: 'UPDATE',
      namespace: 'airflow',
      release: 'airflow',
      component: 'scheduler',
      kind: 'Deployment',
      name: 'airflow-scheduler',
      from: { version: '3.1.0', revision: 'cc92b33c6709' },
      to: { version: '3.0.2', revision: '29ce7909c52b' },
      decision: 'downgrade',
      sideEffect: 'open-operation',
      dryRun: false,
    });
    expect(records[0]!.patch.paths).toContain('/spec/paused');
    expect(records[0]!.latencyMs).toBeGreaterThanOrEqual(0);
    expect(records[0]!.operationId).toMatch(/^dg-/);
  });

  it('records a dry-run downgrade without an operation id (it opens no operation)', async () => {
    const { app, records } = appWith();
    const review = fixture('helm-upgrade-scheduler-3.1.0-to-3.0.2.json');
    review.request.dryRun = true;
    await request(app).post('/mutate').send(review).expect(200);
    expect(records[0]).toMatchObject({ decision: 'downgrade', dryRun: true, sideEffect: 'none' });
    expect(records[0]!.operationId).toBeUndefined();
  });

  it('passes the pre-upgrade migration Job the release state, by namespace and release', async () => {
    const asked: string[] = [];
    const app = createAdmissionApp({
      config: DEFAULT_CONFIG,
      releaseState: (ns, rel) => (asked.push(`${ns}/${rel}`), { runningVersion: '3.1.0' }),
    });
    const res = await request(app)
      .post('/mutate')
      .send(fixture('helm-pre-upgrade-migration-job-3.0.2.json'))
      .expect(200);
    expect(decodePatch(res.body.response)).toContainEqual({ op: 'add', path: '/spec/suspend', value: true });
    expect(asked).toEqual(['airflow/airflow']);
  });

  it.each([
    ['helm-upgrade-pgbouncer.json', { allowed: true }],
    ['kubectl-apply-non-airflow-deployment.json', { allowed: true }],
    ['helm-upgrade-scheduler-3.0.2-to-3.1.0.json', { allowed: true }],
  ])('%s passes through without patch or warnings', async (name, expected) => {
    const res = await request(appWith().app).post('/mutate').send(fixture(name)).expect(200);
    expect(res.body.response).toEqual({ uid: fixture(name).request.uid, ...expected });
  });

  it('dry-run gets the same patch and a dry-run record', async () => {
    const { app, records } = appWith();
    const real = await request(app).post('/mutate').send(fixture('helm-upgrade-scheduler-3.1.0-to-3.0.2.json'));
    const dry = await request(app).post('/mutate').send(fixture('dry-run-scheduler-3.1.0-to-3.0.2.json'));
    expect(dry.body.response.patch).toBe(real.body.response.patch);
    expect(records[1]).toMatchObject({ dryRun: true, sideEffect: 'none', decision: 'downgrade' });
  });

  it('strict mode denies an unknown version with a status message', async () => {
    const app = createAdmissionApp({ config: parseGuardConfig({ strict: true }), releaseState: () => ({}) });
    const res = await request(app).post('/mutate').send(fixture('kubectl-set-image-scheduler-latest.json')).expect(200);
    expect(res.body.response).toMatchObject({
      allowed: false,
      status: { code: 403, message: expect.stringMatching(/strict mode/) },
    });
  });

  it('answers bad bodies with a clear 4xx and keeps serving', async () => {
    const { app } = appWith();
    const tooBig = Buffer.alloc(BODY_LIMIT_BYTES + 10, 0x20);
    const big = await request(app)
      .post('/mutate')
      .set('content-type', 'application/json')
      .send(tooBig.toString())
      .expect(413);
    expect(big.body.error).toMatch(/larger than/);
    const notJson = await request(app)
      .post('/mutate')
      .set('content-type', 'application/json')
      .send('{"apiVersion": ')
      .expect(400);
    expect(notJson.body.error).toMatch(/not valid JSON/);
    const wrongKind = await request(app).post('/mutate').send({ apiVersion: 'v1', kind: 'ConfigMap' }).expect(400);
    expect(wrongKind.body.error).toMatch(/apiVersion must be 'admission.k8s.io\/v1'/);
    const noUid = fixture('helm-upgrade-pgbouncer.json');
    delete noUid.request.uid;
    expect((await request(app).post('/mutate').send(noUid).expect(400)).body.error).toMatch(/request\.uid/);
    const text = await request(app).post('/mutate').set('content-type', 'text/plain').send('hello').expect(415);
    expect(text.body.error).toMatch(/application\/json/);
    await request(app).get('/mutate').expect(404);
    await request(app).post('/mutate').send(fixture('helm-upgrade-pgbouncer.json')).expect(200);
  });

  it('a throwing onDecision never reaches the request', async () => {
    const app = createAdmissionApp({
      config: DEFAULT_CONFIG,
      releaseState: () => ({}),
      onDecision: () => {
        throw new Error('audit down');
      },
    });
    await request(app).post('/mutate').send(fixture('helm-upgrade-scheduler-3.1.0-to-3.0.2.json')).expect(200);
  });

  it('a failing release state lookup is a 503, not a guess', async () => {
    const app = createAdmissionApp({
      config: DEFAULT_CONFIG,
      releaseState: () => {
        throw new Error('cache not synced');
      },
    });
    const res = await request(app)
      .post('/mutate')
      .send(fixture('helm-pre-upgrade-migration-job-3.0.2.json'))
      .expect(503);
    expect(res.body.error).toMatch(/release state of airflow\/airflow unavailable: cache not synced/);
  });

  it('logs decisions as JSON without secrets', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = createLogger({ name: 'webhook', destination });
    const app = createAdmissionApp({ config: DEFAULT_CONFIG, releaseState: () => ({}), logger });
    await request(app).post('/mutate').send(fixture('helm-upgrade-scheduler-3.1.0-to-3.0.2.json')).expect(200);
    const entry = JSON.parse(lines.find((l) => l.includes('"decision":"downgrade"'))!);
    expect(entry).toMatchObject({
      level: 'info',
      service: 'airflow-downgrade-guard',
      component: 'webhook',
      decision: 'downgrade',
      uid: '5c1f2d0a-1b2c-4d3e-8f90-000000000001',
    });
  });
});

describe('probes', () => {
  it('healthz is always ok; readyz follows the delegate', async () => {
    let ready: boolean | { ready: boolean; reason?: string } = { ready: false, reason: 'caches warming up' };
    const app = createAdmissionApp({ config: DEFAULT_CONFIG, releaseState: () => ({}), ready: () => ready });
    await request(app).get('/healthz').expect(200, 'ok');
    await request(app).get('/readyz').expect(503, 'not ready: caches warming up');
    ready = true;
    await request(app).get('/readyz').expect(200, 'ok');
  });
});
