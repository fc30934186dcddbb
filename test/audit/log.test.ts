import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/log.js';
import { createLogger } from '../../src/log/logger.js';
import type { AuditRecord, OperationStepRecord } from '../../src/audit/records.js';
import { queryAudit } from '../../src/audit/store.js';
import {
  createTestDatabase,
  freePort,
  startPrivatePostgres,
  type EmbeddedServer,
  type TestDatabase,
} from '../support/postgres.js';
import { admissionRecord, captureLogger, silentLogger, stepRecord } from './fixtures.js';

function numberedStep(i: number): OperationStepRecord {
  return stepRecord({
    at: new Date(Date.UTC(2025, 5, 1, 10, 0, 0, i)).toISOString(),
    step: `s${i}`,
    event: 'start',
    outputExcerpt: `#${i}`,
  });
}

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function excerpts(records: AuditRecord[]): string[] {
  return records.map((r) => (r.kind === 'operation-step' ? (r.outputExcerpt ?? '') : ''));
}

describe('AuditLog against a reachable store', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  beforeAll(async () => {
    db = await createTestDatabase('audit log');
    pool = new pg.Pool({ connectionString: db.url });
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  it('migrates at start and writes appended records in order, in batches', async () => {
    const log = new AuditLog({ databaseUrl: db.url, schema: 'audit_basic', logger: silentLogger(), batchSize: 7 });
    expect(await log.start()).toBe(true);
    for (let i = 0; i < 50; i++) log.append(numberedStep(i));
    expect(await log.flush(5_000)).toBe(true);
    const stats = await log.close();
    expect(stats).toMatchObject({ buffered: 0, written: 50, dropped: 0, storeUp: true });
    const stored = await queryAudit(pool, { schema: 'audit_basic' });
    expect(excerpts(stored)).toEqual(Array.from({ length: 50 }, (_, i) => `#${i}`));
  });

  it('defaults `at` to now and accepts Dates', async () => {
    const log = new AuditLog({ pool, schema: 'audit_at', logger: silentLogger() });
    const before = Date.now();
    const { at: _at, ...withoutAt } = stepRecord();
    log.append(withoutAt);
    log.append({ ...stepRecord(), at: new Date('2030-01-01T00:00:00Z') });
    expect(await log.flush()).toBe(true);
    const stored = await queryAudit(pool, { schema: 'audit_at' });
    expect(Date.parse(stored[0]!.at)).toBeGreaterThanOrEqual(before);
    expect(stored[1]!.at).toBe('2030-01-01T00:00:00.000Z');
  });

  it('logs every record at once, redacted, and stores the request redacted', async () => {
    const captured = captureLogger();
    const log = new AuditLog({ pool, schema: 'audit_redact', logger: captured.logger });
    const secretRequest = {
      uid: 'u1',
      kind: { group: '', version: 'v1', kind: 'Secret' },
      object: {
        kind: 'Secret',
        metadata: {
          name: 'airflow-metadata',
          annotations: {
            'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({
              kind: 'Secret',
              data: { connection: 'c2VjcmV0LXBhc3N3b3Jk' },
            }),
          },
        },
        data: { connection: 'c2VjcmV0LXBhc3N3b3Jk' },
      },
    };
    const deploymentRequest = {
      uid: 'u2',
      object: {
        spec: {
          template: {
            spec: {
              containers: [
                {
                  name: 'scheduler',
                  env: [
                    {
                      name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN',
                      value: 'postgresql+psycopg2://airflow:hunter2@db:5432/airflow',
                    },
                    { name: 'AIRFLOW__API_AUTH__JWT_SECRET', value: 'jwt-s3cr3t' },
                    { name: 'AIRFLOW__CORE__PARALLELISM', value: '32' },
                  ],
                },
              ],
            },
          },
        },
      },
    };
    log.append(admissionRecord({ requestUid: 'u1', objectKind: 'Secret', request: secretRequest }));
    log.append(
      admissionRecord({
        requestUid: 'u2',
        request: deploymentRequest,
        breakGlassReason: 'db at postgresql://admin:topsecret@10.0.0.5/airflow is stuck',
      }),
    );
    log.append(
      stepRecord({ outputExcerpt: 'connecting with host=db password=letmein user=airflow', error: 'token=abc' }),
    );

    // Logged synchronously, before any write.
    expect(captured.lines.filter((l) => l.msg === 'audit')).toHaveLength(3);
    const text = captured.text();
    for (const secret of ['c2VjcmV0LXBhc3N3b3Jk', 'hunter2', 'jwt-s3cr3t', 'topsecret', 'letmein'])
      expect(text).not.toContain(secret);
    const second = captured.lines[1]!;
    expect(second).toMatchObject({
      msg: 'audit',
      kind: 'admission',
      requestUid: 'u2',
      decision: 'downgrade',
      level: 30,
    });
    expect(second.request).toBeUndefined(); // the full request goes to the store, not the log
    expect(second.breakGlassReason).toBe('db at postgresql://admin:***@10.0.0.5/airflow is stuck');

    expect(await log.flush()).toBe(true);
    const stored = await queryAudit(pool, { schema: 'audit_redact' });
    const storedText = JSON.stringify(stored);
    for (const secret of ['c2VjcmV0LXBhc3N3b3Jk', 'hunter2', 'jwt-s3cr3t', 'topsecret', 'letmein'])
      expect(storedText).not.toContain(secret);
    expect(storedText).toContain('AIRFLOW__CORE__PARALLELISM');
    expect(storedText).toContain('"32"'); // harmless values stay
    const secretObject = (stored[0] as { request: { object: { data: Record<string, string> } } }).request.object;
    expect(secretObject.data).toEqual({ connection: '***' });
  });

  it('writes stable fields through the service logger', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger({
      name: 'webhook',
      destination: { write: (chunk: string) => void lines.push(JSON.parse(chunk)) },
    });
    const log = new AuditLog({ pool, schema: 'audit_service_logger', logger, migrate: true });
    const record = admissionRecord({ breakGlassReason: 'see postgresql://a:b@c/d' });
    log.append(record);
    expect(await log.flush()).toBe(true);
    const { request: _request, ...expected } = record;
    expect(lines[0]).toMatchObject({
      ...expected,
      breakGlassReason: 'see postgresql://a:***@c/d',
      msg: 'audit',
      level: 'info',
      component: 'webhook',
    });
    expect(lines[0]).not.toHaveProperty('request');
  });

  it('drops and reports a record the store refuses without blocking the ones after it', async () => {
    const captured = captureLogger();
    const log = new AuditLog({ pool, schema: 'audit_refused', logger: captured.logger });
    log.append(numberedStep(1));
    log.append({ ...numberedStep(2), at: 'not a time' }); // refused at append
    log.append(numberedStep(3));
    log.append({ ...numberedStep(4), outputExcerpt: 'NUL\u0000byte' }); // jsonb refuses raw NUL: stored as U+FFFD
    log.append({ ...numberedStep(5), exitCode: 10n as unknown as number }); // JSON cannot hold it: dropped by the writer
    expect(await log.flush()).toBe(true);
    const stored = await queryAudit(pool, { schema: 'audit_refused' });
    expect(excerpts(stored)).toEqual(['#1', '#3', 'NUL\ufffdbyte']);
    expect(log.stats()).toMatchObject({ written: 3, dropped: 2, buffered: 0 });
    expect(captured.lines.filter((l) => l.level === 50).map((l) => l.msg)).toEqual([
      'audit record rejected; dropped it',
      'audit store refused a record; dropped it',
    ]);
  });
});

describe('AuditLog while the store is away', () => {
  let server: EmbeddedServer;
  let pool: pg.Pool;
  beforeAll(async () => {
    server = await startPrivatePostgres();
    pool = new pg.Pool({ connectionString: server.url });
    pool.on('error', () => undefined);
  });
  afterEach(async () => {
    await server.start(); // a failed test must not leave the next one without its server
  });
  afterAll(async () => {
    await pool?.end();
    await server?.destroy();
  });

  it('buffers during an outage and writes everything in order when Postgres returns', async () => {
    const captured = captureLogger();
    const log = new AuditLog({
      databaseUrl: server.url,
      schema: 'audit_outage',
      logger: captured.logger,
      retryMinMs: 20,
      retryMaxMs: 200,
    });
    expect(await log.start()).toBe(true);
    for (let i = 0; i < 10; i++) log.append(numberedStep(i));
    expect(await log.flush()).toBe(true);

    await server.stop();
    const timings: number[] = [];
    for (let i = 10; i < 1010; i++) {
      const started = performance.now();
      log.append(numberedStep(i));
      timings.push(performance.now() - started);
      if (i === 10) await waitFor(() => !log.stats().storeUp); // the writer notices the outage
    }
    expect(log.stats()).toMatchObject({ buffered: 1000, storeUp: false, dropped: 0 });
    expect(log.stats().lastError).toBeTruthy();
    expect(await log.flush(300)).toBe(false); // nothing can be written yet
    // Wall-clock timings include the scheduler preempting us on a busy machine, so judge the
    // median and the mean rather than the worst case.
    timings.sort((a, b) => a - b);
    const mean = timings.reduce((sum, t) => sum + t, 0) / timings.length;
    expect(timings[Math.floor(timings.length / 2)]).toBeLessThan(0.1);
    expect(mean).toBeLessThan(0.25);
    expect(captured.lines.some((l) => l.level === 40 && String(l.msg).startsWith('audit store unreachable'))).toBe(
      true,
    );

    await server.start();
    expect(await log.flush(15_000)).toBe(true);
    expect(log.stats()).toMatchObject({ buffered: 0, written: 1010, dropped: 0, storeUp: true });
    expect(captured.lines.some((l) => String(l.msg).startsWith('audit store reachable again'))).toBe(true);
    await log.close();

    const stored = await queryAudit(pool, { schema: 'audit_outage', limit: 5000 });
    expect(excerpts(stored)).toEqual(Array.from({ length: 1010 }, (_, i) => `#${i}`));
  });

  it('drops the oldest records beyond the bound, counts and reports the loss', async () => {
    const captured = captureLogger();
    const log = new AuditLog({
      databaseUrl: server.url,
      schema: 'audit_overflow',
      logger: captured.logger,
      maxBuffered: 100,
      batchSize: 30,
      retryMinMs: 20,
      retryMaxMs: 100,
    });
    expect(await log.start()).toBe(true);
    await server.stop();
    log.append(numberedStep(0));
    await waitFor(() => !log.stats().storeUp);
    for (let i = 1; i < 250; i++) log.append(numberedStep(i));
    await new Promise((resolve) => setTimeout(resolve, 150)); // let a failed retry put its batch back
    expect(log.stats()).toMatchObject({ dropped: 150, storeUp: false });
    expect(log.stats().buffered).toBeLessThanOrEqual(100 + 30);
    const warning = captured.lines.find((l) => l.level === 40 && String(l.msg).startsWith('audit buffer full'));
    expect(warning).toBeDefined();
    expect((warning!.auditStats as { dropped: number }).dropped).toBeGreaterThan(0);

    await server.start();
    expect(await log.flush(15_000)).toBe(true);
    const stats = await log.close();
    expect(stats).toMatchObject({ buffered: 0, written: 100, dropped: 150 });
    const stored = await queryAudit(pool, { schema: 'audit_overflow' });
    expect(excerpts(stored)).toEqual(Array.from({ length: 100 }, (_, i) => `#${i + 150}`));
  });

  it('bounds the bytes of buffered requests too, dropping the oldest', async () => {
    const log = new AuditLog({
      databaseUrl: server.url,
      schema: 'audit_bytes',
      logger: silentLogger(),
      maxBufferedBytes: 20_000,
      retryMinMs: 20,
      retryMaxMs: 100,
    });
    expect(await log.start()).toBe(true);
    await server.stop();
    const big = (i: number) =>
      admissionRecord({ requestUid: `big-${i}`, request: { uid: `big-${i}`, padding: 'x'.repeat(4_000) } });
    for (let i = 0; i < 20; i++) log.append(big(i));
    await waitFor(() => !log.stats().storeUp);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const { dropped, buffered } = log.stats();
    expect(buffered).toBeLessThanOrEqual(5); // 4 KiB each within 20 000 bytes (plus a batch in flight)
    expect(dropped + buffered).toBe(20);
    await server.start();
    expect(await log.flush(15_000)).toBe(true);
    await log.close();
    const stored = await queryAudit(pool, { schema: 'audit_bytes' });
    const uids = stored.map((r) => (r.kind === 'admission' ? r.requestUid : ''));
    expect(uids).toEqual(Array.from({ length: buffered }, (_, i) => `big-${20 - buffered + i}`));
    expect((stored[0] as { request: { padding: string } }).request.padding).toHaveLength(4_000);
  });

  it('starts while the store is unreachable and catches up once it is there', async () => {
    await server.stop();
    const log = new AuditLog({
      databaseUrl: server.url,
      schema: 'audit_late',
      logger: silentLogger(),
      retryMinMs: 20,
      retryMaxMs: 50,
    });
    expect(await log.start()).toBe(false);
    log.append(numberedStep(1));
    expect(await log.flush(100)).toBe(false);
    expect(log.stats()).toMatchObject({ buffered: 1, storeUp: false });
    expect(log.stats().lastError).toMatch(/ECONNREFUSED|connect/);
    await server.start();
    expect(await log.flush(15_000)).toBe(true);
    expect(log.stats()).toMatchObject({ buffered: 0, written: 1, storeUp: true });
    expect(excerpts(await queryAudit(pool, { schema: 'audit_late' }))).toEqual(['#1']);
    await log.close();
    log.append(numberedStep(2)); // after close: counted, never thrown
    expect(log.stats().dropped).toBe(1);
  });

  it('gives up flushing at the timeout and says how much is unwritten', async () => {
    const port = await freePort();
    const captured = captureLogger();
    const url = server.url.replace(/:\d+\//, `:${port}/`);
    const log = new AuditLog({
      databaseUrl: url,
      schema: 'audit_never',
      logger: captured.logger,
      retryMinMs: 20,
      retryMaxMs: 50,
    });
    log.append(numberedStep(1));
    const started = Date.now();
    const stats = await log.close(200);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(stats).toMatchObject({ buffered: 1, written: 0, storeUp: false });
    expect(captured.lines.at(-1)).toMatchObject({ level: 50, msg: 'audit log closed with 1 unwritten record(s)' });
  });
});
