// The lean POST /mutate path: body reading with a cap, content negotiation, the exact response
// bytes, routes added after the app is built, and which decisions are logged at which level.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/core/config.js';
import { reviewAdmission } from '../../src/core/review.js';
import { BODY_LIMIT_BYTES, createAdmissionApp } from '../../src/webhook/app.js';
import { createLogger } from '../../src/log/logger.js';

const fixtureText = (name: string) => readFileSync(new URL(`../fixtures/admission/${name}`, import.meta.url), 'utf8');
const fixture = (name: string) => JSON.parse(fixtureText(name));

const DOWNGRADE = 'helm-upgrade-scheduler-3.1.0-to-3.0.2.json';
const PASS_THROUGH = 'kubectl-apply-non-airflow-deployment.json';
const FORWARD = 'helm-upgrade-scheduler-3.0.2-to-3.1.0.json';

function capture(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return { lines, logger: createLogger({ name: 'webhook', level, destination }) };
}

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A raw request, for headers supertest would correct (a Content-Length with no body behind it). */
async function raw(
  app: http.RequestListener,
  headers: Record<string, string>,
  body = '',
): Promise<{ status: number; body: string }> {
  const server = http.createServer(app);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/mutate', headers, agent: false },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('POST /mutate without the framework', () => {
  const app = createAdmissionApp({ config: DEFAULT_CONFIG, releaseState: () => ({ runningVersion: '3.1.0' }) });

  it('answers with exactly the serialised review response, as JSON', async () => {
    const res = await request(app)
      .post('/mutate')
      .set('content-type', 'application/json')
      .send(fixtureText(DOWNGRADE))
      .expect(200);
    const expected = reviewAdmission(fixture(DOWNGRADE), () => ({ runningVersion: '3.1.0' }), DEFAULT_CONFIG).response;
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.text).toBe(JSON.stringify(expected));
    expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.text));
  });

  it('accepts the ?timeout= the API server appends, and */*+json media types with a utf-8 charset', async () => {
    await request(app).post('/mutate?timeout=10s').send(fixture(PASS_THROUGH)).expect(200);
    const res = await request(app)
      .post('/mutate')
      .set('content-type', 'application/vnd.kubernetes+json; charset=UTF-8')
      .send(fixtureText(PASS_THROUGH))
      .expect(200);
    expect(res.body.response.uid).toBe(fixture(PASS_THROUGH).request.uid);
  });

  it('reads a body that arrives in many chunks, and one that starts with a byte order mark', async () => {
    const text = fixtureText(FORWARD);
    const chunked = await raw(app, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, text);
    expect(JSON.parse(chunked.body).response.uid).toBe(fixture(FORWARD).request.uid);
    const bom = await raw(app, { 'content-type': 'application/json' }, `\ufeff${text}`);
    expect(bom.status).toBe(200);
  });

  it('refuses what it cannot read as a JSON AdmissionReview with 415', async () => {
    const latin1 = await request(app)
      .post('/mutate')
      .set('content-type', 'application/json; charset=latin1')
      .send('{}')
      .expect(415);
    expect(latin1.body.error).toMatch(/charset "LATIN1"/);
    const gzip = await raw(app, { 'content-type': 'application/json', 'content-encoding': 'gzip' }, '{}');
    expect(gzip.status).toBe(415);
    expect(JSON.parse(gzip.body).error).toMatch(/content encoding "gzip"/);
    const noBody = await request(app).post('/mutate').expect(415);
    expect(noBody.body.error).toMatch(/application\/json/);
  });

  it('answers 413 from the declared length alone, before reading the body', async () => {
    const res = await raw(app, { 'content-type': 'application/json', 'content-length': String(BODY_LIMIT_BYTES + 1) });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).error).toMatch(/larger than the 3145728 byte limit/);
  });

  it('answers 413 to a chunked body that grows past the limit, then keeps serving', async () => {
    const res = await raw(
      app,
      { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      ' '.repeat(BODY_LIMIT_BYTES + 1),
    );
    expect(res.status).toBe(413);
    await request(app).post('/mutate').send(fixture(PASS_THROUGH)).expect(200);
  });

  it('a JSON value that is not an AdmissionReview object is a 400', async () => {
    const res = await request(app).post('/mutate').set('content-type', 'application/json').send('[1, 2]').expect(400);
    expect(res.body.error).toMatch(/invalid AdmissionReview/);
    const empty = await raw(app, { 'content-type': 'application/json', 'content-length': '0' });
    expect(empty.status).toBe(400);
  });
});

describe('routes besides /mutate', () => {
  it('serves GET /metrics from the collector it is given; others get a JSON 404', async () => {
    const app = createAdmissionApp({
      config: DEFAULT_CONFIG,
      releaseState: () => ({}),
      metrics: async () => ({ text: '# metrics', contentType: 'text/plain; version=0.0.4' }),
    });
    const metrics = await request(app).get('/metrics').expect(200, '# metrics');
    expect(metrics.headers['content-type']).toMatch(/^text\/plain; version=0.0.4/);
    const missing = await request(app).get('/nowhere').expect(404);
    expect(missing.body.error).toMatch(/not found: .*GET \/metrics/);
    expect(missing.headers['content-type']).toBe('application/json; charset=utf-8');
  });

  it('without a collector there is no /metrics route', async () => {
    const app = createAdmissionApp({ config: DEFAULT_CONFIG, releaseState: () => ({}) });
    const missing = await request(app).get('/metrics').expect(404);
    expect(missing.body.error).not.toMatch(/metrics/);
  });

  it('a metrics collector that fails is a 500 with its reason', async () => {
    const app = createAdmissionApp({
      config: DEFAULT_CONFIG,
      releaseState: () => ({}),
      metrics: () => Promise.reject(new Error('main thread gone')),
    });
    const res = await request(app).get('/metrics').expect(500);
    expect(res.text).toMatch(/cannot collect metrics: main thread gone/);
  });

  it('an error thrown while routing is a JSON 500 without details, logged', async () => {
    const { lines, logger } = capture('info');
    // A readiness answer whose fields throw when read: the route handler itself fails.
    const hostile = Object.defineProperty({}, 'ready', {
      get: () => {
        throw new Error('secret internals');
      },
    }) as { ready: boolean };
    const app = createAdmissionApp({ config: DEFAULT_CONFIG, releaseState: () => ({}), logger, ready: () => hostile });
    const res = await request(app).get('/readyz').expect(500);
    expect(res.body).toEqual({ error: 'internal error while deciding the admission request' });
    expect(res.text).not.toMatch(/secret internals/);
    expect(lines.some((l) => l.level === 'error')).toBe(true);
  });
});

describe('decision logging', () => {
  it('routine decisions (pass-through, forward, no change) are debug lines: absent at info, present at debug', async () => {
    for (const [level, expected] of [
      ['info', 0],
      ['debug', 2],
    ] as const) {
      const { lines, logger } = capture(level);
      const app = createAdmissionApp({
        config: DEFAULT_CONFIG,
        releaseState: () => ({ runningVersion: '3.0.2' }),
        logger,
      });
      await request(app).post('/mutate').send(fixture(PASS_THROUGH)).expect(200);
      await request(app).post('/mutate').send(fixture(FORWARD)).expect(200);
      const decisions = lines.filter((l) => typeof l.decision === 'string');
      expect(decisions).toHaveLength(expected);
      if (expected)
        expect(decisions.map((d) => [d.level, d.decision])).toEqual([
          ['debug', 'pass-through'],
          ['debug', 'forward'],
        ]);
    }
  });

  it('a routine decision is still reported to onDecision (metrics, audit)', async () => {
    const seen: string[] = [];
    const app = createAdmissionApp({
      config: DEFAULT_CONFIG,
      releaseState: () => ({}),
      onDecision: (r) => seen.push(r.decision),
      logger: capture('info').logger,
    });
    await request(app).post('/mutate').send(fixture(PASS_THROUGH)).expect(200);
    expect(seen).toEqual(['pass-through']);
  });

  it('a downgrade stays an info line', async () => {
    const { lines, logger } = capture('info');
    const app = createAdmissionApp({ config: DEFAULT_CONFIG, releaseState: () => ({}), logger });
    await request(app).post('/mutate').send(fixture(DOWNGRADE)).expect(200);
    expect(lines.filter((l) => l.decision === 'downgrade').map((l) => l.level)).toEqual(['info']);
  });
});
