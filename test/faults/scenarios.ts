// The fault scenarios: each starts a fresh simulated cluster + Postgres + the real guard,
// installs a 3.1.0 release, downgrades it to 3.0.2 with one fault injected, and yields a table row.
import pg from 'pg';
import { expect } from 'vitest';
import { startPrivatePostgres as startPrivate, type EmbeddedServer } from '../support/postgres.js';
import { RESOURCES } from '../../testbed/sim/resources.js';
import type { KubeObject } from '../../testbed/sim/types.js';
import { startE2E, waitFor, type E2E, type Guard, type ReleaseSpec } from '../e2e/harness.js';
import {
  ALLOWED_COMMANDS,
  FROM,
  TO,
  auditAppended,
  auditStored,
  classify,
  downgradeRelease,
  killAndRestart,
  lostRecords,
  recordExecs,
  releaseSpec,
  waitTerminal,
  type ExecCall,
  type FaultRow,
  type Outcome,
} from './support.js';

export interface Ctx {
  e2e: E2E;
  spec: ReleaseSpec;
  guard: Guard;
  execs: ExecCall[];
  /** When the fault hit; recovery time is measured from here to the operation's end. */
  faultAt: number;
  note?: string;
  auditUrl?: string;
  /** Version the release should end on when the outcome is 'completed'. */
  target: string;
}

export interface Scenario {
  fault: string;
  expected: Outcome | Outcome[];
  guardArgs?: string[];
  stepDurationMs?: number;
  spec?: Partial<ReleaseSpec>;
  /** Before the guard starts (e.g. the audit store). Returns extra guard args. */
  setup?(e2e: E2E): Promise<{ args?: string[]; auditUrl?: string; cleanup?: () => Promise<void> }>;
  /** Triggers the downgrade and injects the fault (may restart ctx.guard). */
  run(ctx: Ctx): Promise<void>;
  /** After the operation ended, before classification. */
  after?(ctx: Ctx): Promise<void>;
}

const OP_TIMEOUT_MS = 90_000;

export async function runScenario(s: Scenario): Promise<FaultRow> {
  const e2e = await startE2E({ stepDurationMs: s.stepDurationMs ?? 40 });
  let cleanup: (() => Promise<void>) | undefined;
  try {
    const spec = releaseSpec(s.spec);
    await e2e.installRelease(spec);
    const extra = s.setup ? await s.setup(e2e) : {};
    cleanup = extra.cleanup;
    const execs = recordExecs(e2e);
    const guard = await e2e.startGuard('guard-1', [...(s.guardArgs ?? []), ...(extra.args ?? [])]);
    const ctx: Ctx = {
      e2e,
      spec,
      guard,
      execs,
      faultAt: Date.now(),
      target: TO,
      ...(extra.auditUrl ? { auditUrl: extra.auditUrl } : {}),
    };
    await s.run(ctx);
    const op = await waitTerminal(e2e, spec, OP_TIMEOUT_MS).catch(() => e2e.operation(spec.namespace, spec.release));
    const recoverMs = Date.now() - ctx.faultAt;
    if (s.after) await s.after(ctx);
    const result = op
      ? await classify(e2e, ctx.spec, op, ctx.target)
      : { outcome: 'failed' as Outcome, violations: -1, alembic: (await e2e.revision()) ?? '(none)' };
    const row: FaultRow = {
      fault: s.fault,
      outcome: result.outcome,
      expected: s.expected,
      phase: op?.phase ?? '(no operation)',
      violations: result.violations,
      alembic: result.alembic,
      recoverMs,
      note: [ctx.note, op?.phase === 'held' ? `held: ${(op.heldReason ?? '').slice(0, 120)}` : undefined]
        .filter(Boolean)
        .join('; ')
        .replaceAll('|', '/'),
    };
    if (ctx.auditUrl) {
      const appended = auditAppended(e2e.guards);
      const stored = await waitFor(
        'audit flushed',
        async () => {
          const now = await auditStored(ctx.auditUrl!);
          return lostRecords(appended, now) === 0 ? now : undefined;
        },
        30_000,
        200,
      ).catch(() => auditStored(ctx.auditUrl!));
      row.lostAudit = lostRecords(appended, stored);
      row.note = `${row.note ? `${row.note}; ` : ''}audit appended ${JSON.stringify(appended)} stored ${JSON.stringify(stored)}`;
    }
    // Exec only ever ran the fixed argv, only in pods of this release.
    for (const call of execs) {
      expect(ALLOWED_COMMANDS, `exec ${call.command} in ${call.pod}`).toContain(call.command);
      expect(
        call.pod.startsWith(`${spec.release}-`) || call.pod.startsWith('airflow-downgrade-guard-runner-'),
        call.pod,
      ).toBe(true);
    }
    return row;
  } finally {
    await e2e.stop().catch(() => undefined);
    await cleanup?.().catch(() => undefined);
  }
}

// ---- building blocks -------------------------------------------------------------------------

const phaseOf = (ctx: Ctx): string | undefined => ctx.e2e.operation(ctx.spec.namespace, ctx.spec.release)?.phase;

const PHASE_ORDER = ['confirm', 'downgrade', 'verify', 'drain', 'release', 'done'];

/**
 * Until the operation is in one of `phases` or already past them: a short phase (confirm takes tens of
 * ms) can come and go between two polls of a loaded machine. The table records the phase the kill hit.
 */
async function untilPhase(ctx: Ctx, phases: string[], timeoutMs = 60_000): Promise<void> {
  // Only the forward phases are ordered; held, aborted and cancelled must be seen as such.
  const ordered = phases.filter((p) => PHASE_ORDER.includes(p));
  const earliest = ordered.length > 0 ? Math.min(...ordered.map((p) => PHASE_ORDER.indexOf(p))) : Infinity;
  await waitFor(
    `phase ${phases.join('|')}${ordered.length > 0 ? ' or later' : ''}`,
    () => {
      const phase = phaseOf(ctx) ?? '';
      return phases.includes(phase) || (PHASE_ORDER.includes(phase) && PHASE_ORDER.indexOf(phase) >= earliest);
    },
    timeoutMs,
    5,
  );
}

async function untilLog(ctx: Ctx, text: string | string[], timeoutMs = 60_000): Promise<void> {
  const texts = [text].flat();
  await waitFor(
    `log "${texts.join('" or "')}"`,
    () => ctx.guard.logs.some((l) => texts.some((t) => l.includes(t))),
    timeoutMs,
    5,
  );
}

/** SIGKILL the guard once `when` resolves, restart it, recovery measured from the kill. */
function killAt(fault: string, when: (ctx: Ctx) => Promise<void>, extra: Partial<Scenario> = {}): Scenario {
  return {
    fault: `SIGKILL ${fault}`,
    expected: 'completed',
    ...extra,
    async run(ctx) {
      await downgradeRelease(ctx.e2e, ctx.spec);
      await when(ctx);
      const phase = phaseOf(ctx);
      const { guard, killedAt } = await killAndRestart(ctx.e2e, ctx.guard);
      ctx.guard = guard;
      ctx.faultAt = killedAt;
      ctx.note = `killed in phase ${phase}`;
    },
  };
}

function setMetadataUrl(e2e: E2E, spec: ReleaseSpec, url: string): Promise<unknown> {
  return e2e.admin.patch('Secret', spec.namespace, `${spec.release}-metadata`, [
    { op: 'replace', path: '/data/connection', value: Buffer.from(url).toString('base64') },
  ]);
}

const DEAD_URL = (url: string): string => url.replace(/:(\d+)\//, ':1/');

function apiFault(fault: string, rules: E2E['sim']['api']['faults'], extra: Partial<Scenario> = {}): Scenario {
  return {
    fault: `API ${fault}`,
    expected: 'completed',
    ...extra,
    async run(ctx) {
      ctx.e2e.sim.api.faults.push(...structuredClone(rules));
      ctx.faultAt = Date.now();
      await downgradeRelease(ctx.e2e, ctx.spec);
    },
    async after(ctx) {
      ctx.e2e.sim.api.faults.length = 0;
      const hit = ctx.e2e.sim.api.requests.filter(
        (r) => r.code >= 409 && r.user.includes('airflow-downgrade-guard'),
      ).length;
      ctx.note = `${hit} guard requests answered with an error`;
    },
  };
}

function execFault(
  fault: string,
  rule: Parameters<E2E['sim']['runtime']['faults']['add']>[0],
  expected: Outcome | Outcome[],
  extra: Partial<Scenario> = {},
): Scenario {
  return {
    fault: `exec ${fault}`,
    expected,
    ...extra,
    async run(ctx) {
      ctx.e2e.sim.runtime.faults.add(rule);
      ctx.faultAt = Date.now();
      await downgradeRelease(ctx.e2e, ctx.spec);
    },
    async after(ctx) {
      ctx.note = `execs: ${ctx.execs.map((c) => c.command.split(' ').slice(2, 3).join('')).join(', ')}`;
    },
  };
}

// ---- the scenarios ---------------------------------------------------------------------------

export const BASELINE: Scenario = {
  fault: 'none (baseline)',
  expected: 'completed',
  async run(ctx) {
    await downgradeRelease(ctx.e2e, ctx.spec);
  },
};

export const KILLS: Scenario[] = [
  killAt('after open', (ctx) => untilPhase(ctx, ['confirm'])),
  killAt('after confirm', (ctx) => untilPhase(ctx, ['downgrade'])),
  killAt(
    'during exec',
    async (ctx) => {
      await untilLog(ctx, 'operation downgrade start');
      await new Promise((r) => setTimeout(r, 250));
    },
    { stepDurationMs: 200 },
  ),
  killAt('after downgrade', (ctx) => untilPhase(ctx, ['verify', 'drain'])),
  killAt('after verify', (ctx) => untilPhase(ctx, ['drain'])),
  killAt('during drain wait', async (ctx) => {
    await untilPhase(ctx, ['drain']);
    await untilLog(ctx, ['operation drain start', 'drained to 0 replicas']);
  }),
  killAt('after drain', (ctx) => untilPhase(ctx, ['release', 'done'])),
  killAt('after release', (ctx) => untilPhase(ctx, ['done'])),
];

const GUARD = 'system:serviceaccount:airflow-downgrade-guard:airflow-downgrade-guard';

export const API_FAULTS: Scenario[] = [
  apiFault('409 on operation ConfigMap updates (x3)', [
    { match: { verb: 'update', resource: 'configmaps', user: GUARD }, respond: { code: 409, times: 3 } },
  ]),
  apiFault('429 on workload patches (x4)', [
    { match: { verb: 'patch', resource: 'deployments', user: GUARD }, respond: { code: 429, times: 4 } },
  ]),
  apiFault('500 on Secret reads (x3)', [
    { match: { verb: 'get', resource: 'secrets', user: GUARD }, respond: { code: 500, times: 3 } },
  ]),
  apiFault('503 on Lease calls (x4)', [
    { match: { resource: 'leases', user: GUARD }, respond: { code: 503, times: 4 } },
  ]),
  apiFault('503 on exec (x2)', [
    { match: { verb: 'create', resource: 'pods/exec', user: GUARD }, respond: { code: 503, times: 2 } },
  ]),
  apiFault('timeouts: 12 s delay on ConfigMap reads (x2)', [
    { match: { verb: 'get', resource: 'configmaps', user: GUARD }, respond: { delayMs: 12_000, times: 2 } },
  ]),
  apiFault('watch disconnects every 150 ms (x40)', [
    { match: { verb: 'watch', user: GUARD }, respond: { dropWatchAfterMs: 150, times: 40 } },
  ]),
  {
    fault: 'API watch drop + 410 Gone on resume',
    expected: 'completed',
    async run(ctx) {
      ctx.e2e.sim.api.faults.push({
        match: { verb: 'watch', user: GUARD },
        respond: { dropWatchAfterMs: 300, times: 30 },
      });
      ctx.faultAt = Date.now();
      const compact = setInterval(() => ctx.e2e.sim.store.compactHistory(), 100);
      await downgradeRelease(ctx.e2e, ctx.spec);
      await waitTerminal(ctx.e2e, ctx.spec, 60_000).finally(() => clearInterval(compact));
    },
    async after(ctx) {
      ctx.e2e.sim.api.faults.length = 0;
    },
  },
];

export const POSTGRES_FAULTS: Scenario[] = [
  {
    fault: 'metadata DB unreachable before exec (2 s)',
    expected: 'completed',
    async run(ctx) {
      await setMetadataUrl(ctx.e2e, ctx.spec, DEAD_URL(ctx.e2e.db.url));
      ctx.faultAt = Date.now();
      await downgradeRelease(ctx.e2e, ctx.spec);
      await untilPhase(ctx, ['confirm']);
      await new Promise((r) => setTimeout(r, 2000));
      await setMetadataUrl(ctx.e2e, ctx.spec, ctx.e2e.db.url);
    },
  },
  {
    fault: 'metadata DB unreachable after exec (2 s)',
    expected: 'completed',
    async run(ctx) {
      await downgradeRelease(ctx.e2e, ctx.spec);
      await untilLog(ctx, 'operation downgrade end');
      await setMetadataUrl(ctx.e2e, ctx.spec, DEAD_URL(ctx.e2e.db.url));
      ctx.faultAt = Date.now();
      await new Promise((r) => setTimeout(r, 2000));
      await setMetadataUrl(ctx.e2e, ctx.spec, ctx.e2e.db.url);
    },
  },
];

export const EXEC_FAULTS: Scenario[] = [
  execFault(
    'non-zero exit',
    { command: 'db downgrade', fault: { kind: 'exec-fail', exitCode: 1, message: 'boom' }, times: 1 },
    'held safely',
  ),
  execFault(
    'halfway, then exit 1 (intermediate revision)',
    { command: 'db downgrade', fault: { kind: 'exec-halfway', steps: 1, then: 'exit' }, times: 1 },
    'held safely',
  ),
  execFault(
    'halfway, then connection dropped (no exit status)',
    { command: 'db downgrade', fault: { kind: 'exec-halfway', steps: 1, then: 'drop' }, times: 1 },
    ['held safely', 'completed'],
  ),
  execFault(
    'hangs past --exec-timeout-ms',
    { command: 'db downgrade', fault: { kind: 'exec-hang' }, times: 1 },
    'held safely',
    { guardArgs: ['--exec-timeout-ms', '1500'] },
  ),
  // After a lost exec the guard waits for the migration lock and reads the schema again: from an
  // intermediate revision it either rolls forward and holds, or (lock free, next attempt) finishes.
  execFault(
    'halfway, then hangs past the timeout',
    { command: 'db downgrade', fault: { kind: 'exec-halfway', steps: 1, then: 'hang' }, times: 1 },
    ['held safely', 'completed'],
    { guardArgs: ['--exec-timeout-ms', '1500'] },
  ),
];

function podsOfRelease(ctx: Ctx): KubeObject[] {
  return ctx.e2e.sim.store
    .list(RESOURCES.pods, ctx.spec.namespace)
    .items.filter((p) => p.metadata.labels?.release === ctx.spec.release);
}

export const WORKLOAD_FAULTS: Scenario[] = [
  {
    fault: 'workload deleted mid-operation (triggerer, during exec)',
    expected: 'completed',
    stepDurationMs: 150,
    async run(ctx) {
      await downgradeRelease(ctx.e2e, ctx.spec);
      await untilLog(ctx, 'operation downgrade start');
      await ctx.e2e.admin.delete('Deployment', ctx.spec.namespace, `${ctx.spec.release}-triggerer`);
      ctx.faultAt = Date.now();
      ctx.spec = { ...ctx.spec, components: (ctx.spec.components ?? []).filter((c) => c !== 'triggerer') };
    },
  },
  {
    fault: 'second downgrade 3.0.2 -> 2.10.5 while the first runs',
    expected: ['completed', 'held safely'],
    stepDurationMs: 150,
    async run(ctx) {
      await downgradeRelease(ctx.e2e, ctx.spec);
      await untilLog(ctx, 'operation downgrade start');
      ctx.faultAt = Date.now();
      const answer = await downgradeRelease(ctx.e2e, ctx.spec, '2.10.5').then(
        () => 'admitted',
        (e: Error) => `refused: ${e.message.slice(0, 100)}`,
      );
      ctx.note = `second change ${answer}`;
    },
    async after(ctx) {
      // Whatever the second change got, no schema older than 3.0.2's may be reached by this operation,
      // and the first one's end state must be consistent (classified below).
      const op = ctx.e2e.operation(ctx.spec.namespace, ctx.spec.release);
      ctx.note = `${ctx.note}; final op ${op?.fromVersion} -> ${op?.toVersion} ${op?.phase}`;
      if (op?.toVersion === '2.10.5') ctx.target = '2.10.5';
    },
  },
  {
    fault: 'upgrade back to 3.1.0 while held (exec failed first)',
    expected: 'cancelled',
    async run(ctx) {
      ctx.e2e.sim.runtime.faults.add({ command: 'db downgrade', fault: { kind: 'exec-fail', exitCode: 1 }, times: 1 });
      await downgradeRelease(ctx.e2e, ctx.spec);
      await untilPhase(ctx, ['held']);
      ctx.faultAt = Date.now();
      await downgradeRelease(ctx.e2e, ctx.spec, FROM);
      await untilPhase(ctx, ['cancelled'], 30_000);
    },
    async after(ctx) {
      ctx.note = `downgrade execs: ${ctx.execs.filter((c) => c.command.includes('downgrade')).length} (the failed one only)`;
    },
  },
  {
    fault: 'upgrade back to 3.1.0 before any exec (DB unreachable)',
    expected: 'cancelled',
    async run(ctx) {
      await setMetadataUrl(ctx.e2e, ctx.spec, DEAD_URL(ctx.e2e.db.url));
      await downgradeRelease(ctx.e2e, ctx.spec);
      await untilPhase(ctx, ['confirm']);
      ctx.faultAt = Date.now();
      await downgradeRelease(ctx.e2e, ctx.spec, FROM);
      await untilPhase(ctx, ['cancelled'], 30_000);
      await setMetadataUrl(ctx.e2e, ctx.spec, ctx.e2e.db.url);
    },
    async after(ctx) {
      expect(ctx.execs).toEqual([]);
      ctx.note = 'no exec at all';
    },
  },
];

export { podsOfRelease };

/**
 * The audit store is down from before the downgrade until well after it ended; the metadata DB is
 * also unreachable for a while (connection strings in error paths). Afterwards: 0 records lost,
 * a dry-run break-glass change is audited, and the metadata password appears in no log line,
 * Event, or audit row.
 */
export const AUDIT_FAULTS: Scenario[] = [
  {
    fault: 'audit store down for the whole operation (+2 s), metadata DB down 1.5 s; secrets and break-glass checked',
    expected: 'completed',
    async setup() {
      const store = await startPrivatePostgres();
      await store.stop();
      return {
        args: ['--audit-database-url', store.url],
        auditUrl: store.url,
        cleanup: () => store.destroy(),
        store,
      } as never;
    },
    async run(ctx) {
      ctx.faultAt = Date.now();
      await setMetadataUrl(ctx.e2e, ctx.spec, DEAD_URL(ctx.e2e.db.url));
      await downgradeRelease(ctx.e2e, ctx.spec);
      await untilPhase(ctx, ['confirm']);
      await new Promise((r) => setTimeout(r, 1500));
      await setMetadataUrl(ctx.e2e, ctx.spec, ctx.e2e.db.url);
      await waitTerminal(ctx.e2e, ctx.spec);
      await breakGlassDryRun(ctx);
      await new Promise((r) => setTimeout(r, 2000));
      await AUDIT_STORES.get(ctx.auditUrl!)!.start();
    },
    async after(ctx) {
      const url = ctx.auditUrl!;
      await waitFor(
        'break-glass audited',
        async () => (await auditRows(url, "decision = 'break-glass'")).length > 0,
        30_000,
        200,
      );
      const breakGlass = await auditRows(url, "decision = 'break-glass'");
      expect(JSON.stringify(breakGlass)).toContain('fault-suite: emergency rollback drill');
      const password = decodeURIComponent(new URL(ctx.e2e.db.url).password);
      expect(password.length).toBeGreaterThanOrEqual(6);
      const logs = ctx.e2e.guards.flatMap((g) => g.logs).join('\n');
      const events = JSON.stringify(ctx.e2e.sim.store.list(RESOURCES.events, ctx.spec.namespace).items);
      const audit = JSON.stringify(await auditRows(url, 'true'));
      const warnings = ctx.e2e.guards
        .flatMap((g) => g.logs)
        .filter((l) => l.includes('warning'))
        .join('\n');
      for (const [where, text] of Object.entries({ logs, events, audit, warnings })) {
        expect(text.includes(password), `metadata password in ${where}`).toBe(false);
        expect(text.includes(ctx.e2e.db.url), `connection string in ${where}`).toBe(false);
      }
      expect(logs).toContain('***'); // the redacted URL did show up in the DB-down messages
      ctx.note = `password absent from ${logs.length} B of logs, ${events.length} B of Events, ${audit.length} B of audit; break-glass audited`;
    },
  },
];

const AUDIT_STORES = new Map<string, EmbeddedServer>();

async function startPrivatePostgres(): Promise<EmbeddedServer> {
  const server = await startPrivate();
  AUDIT_STORES.set(server.url, server);
  return server;
}

/** `kubectl apply --dry-run=server` of a break-glass downgrade: decided and audited, nothing changes. */
async function breakGlassDryRun(ctx: Ctx): Promise<void> {
  const name = `${ctx.spec.release}-scheduler`;
  await ctx.e2e.admin.rest.request(
    'PATCH',
    `/apis/apps/v1/namespaces/${ctx.spec.namespace}/deployments/${name}?dryRun=All`,
    {
      body: {
        metadata: { annotations: { 'airflow-downgrade-guard/break-glass': 'fault-suite: emergency rollback drill' } },
        spec: { template: { spec: { containers: [{ name: 'scheduler', image: 'apache/airflow:2.10.5' }] } } },
      },
      contentType: 'application/strategic-merge-patch+json',
    },
  );
}

async function auditRows(url: string, where: string): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (
      await client.query(`SELECT record, request, decision FROM airflow_downgrade_guard.audit_records WHERE ${where}`)
    ).rows;
  } finally {
    await client.end();
  }
}
