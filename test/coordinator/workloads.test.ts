import fastJsonPatch from 'fast-json-patch';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/core/config.js';
import { holdPatch, type JsonPatchOp } from '../../src/core/hold.js';
import type { WorkloadKind } from '../../src/core/objects.js';
import type { EventQueue } from '../../src/coordinator/event-queue.js';
import { DRAINED_ANNOTATION, projectWorkload, type WorkloadRecord } from '../../src/coordinator/release-view.js';
import { WorkloadGateway } from '../../src/coordinator/workloads.js';
import type { Cluster } from '../../src/k8s/cluster.js';
import { chartWorkload } from '../fixtures/admission/builders.js';
import { FROM_HEAD, operation, TO_HEAD } from './steps/memory-context.js';

const op = operation('drain');

/**
 * A cluster of workloads in memory: patches apply only to the resourceVersion they were read at;
 * `afterRead` runs after each read (someone else writing in between).
 */
function memoryCluster(objects: Array<Record<string, unknown>>) {
  const store = new Map(objects.map((o) => [nameOf(o), structuredClone(o)]));
  const hooks: { afterRead?: () => void } = {};
  const patches: Array<{ name: string; ops: JsonPatchOp[] }> = [];
  const cluster = {
    async find(_kind: WorkloadKind, _ns: string, name: string) {
      const obj = store.get(name);
      const read = obj && structuredClone(obj);
      hooks.afterRead?.();
      return read;
    },
    async patchUnchanged(_kind: WorkloadKind, read: Record<string, unknown>, ops: JsonPatchOp[]) {
      const name = nameOf(read);
      const current = store.get(name)!;
      if (resourceVersionOf(current) !== resourceVersionOf(read))
        throw Object.assign(new Error('conflict'), { code: 409 });
      const next = fastJsonPatch.applyPatch(structuredClone(current), ops as never, true, false).newDocument;
      (next.metadata as { resourceVersion: string }).resourceVersion = String(Number(resourceVersionOf(current)) + 1);
      store.set(name, next);
      patches.push({ name, ops });
      return next;
    },
  };
  return { cluster: cluster as unknown as Cluster, store, patches, hooks };
}

function nameOf(o: Record<string, unknown>): string {
  return (o.metadata as { name: string }).name;
}
function resourceVersionOf(o: Record<string, unknown>): string {
  return (o.metadata as { resourceVersion: string }).resourceVersion;
}

function gateway(objects: Array<Record<string, unknown>>, records: WorkloadRecord[] = []) {
  const mem = memoryCluster(objects);
  const events: Array<Record<string, unknown>> = [];
  const queue = { record: (_ns: string, event: Record<string, unknown>) => events.push(event) };
  const gw = new WorkloadGateway({
    cluster: mem.cluster,
    config: DEFAULT_CONFIG,
    events: queue as unknown as EventQueue,
    identity: 'guard-0',
    logger: pino({ level: 'silent' }),
    releaseWorkloads: () => records,
  });
  return { gw, events, ...mem };
}

function record(obj: Record<string, unknown>, kind: WorkloadKind = 'Deployment'): WorkloadRecord {
  return projectWorkload(kind, obj, DEFAULT_CONFIG)!;
}

function heldFor(id: string, obj: Record<string, unknown>): Record<string, unknown> {
  const target = {
    operationId: id,
    fromVersion: '3.1.0',
    toVersion: '3.0.2',
    fromRevision: FROM_HEAD,
    toRevision: TO_HEAD,
  };
  const { patch } = holdPatch('Deployment', obj, target, 'UPDATE');
  return fastJsonPatch.applyPatch(structuredClone(obj), patch as never, true, false).newDocument;
}

const scheduler = chartWorkload({
  kind: 'Deployment',
  component: 'scheduler',
  version: '3.1.0',
  replicas: 3,
  stored: true,
});
const cleanup = chartWorkload({ kind: 'CronJob', component: 'database-cleanup', version: '3.1.0', stored: true });

describe('the workload gateway', () => {
  it('scales a Deployment to 0 with the replicas to restore recorded, once, with a Draining Event', async () => {
    const { gw, store, patches, events } = gateway([scheduler]);
    await gw.scaleToZero(op, record(scheduler));
    const drained = store.get('airflow-scheduler')!;
    expect(drained.spec).toMatchObject({ replicas: 0 });
    expect(
      JSON.parse((drained.metadata as { annotations: Record<string, string> }).annotations[DRAINED_ANNOTATION]!),
    ).toEqual({
      operation: op.id,
      replicas: 3,
    });
    expect(events).toEqual([
      expect.objectContaining({
        reason: 'Draining',
        involvedObject: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'airflow-scheduler', namespace: 'airflow' },
        reportingInstance: 'guard-0',
      }),
    ]);
    // Drained already (the cache had not shown it): nothing written, its record kept.
    await gw.scaleToZero(op, record(scheduler));
    expect(patches).toHaveLength(1);
  });

  it('patches only the object as it was read: a change in between is a conflict', async () => {
    const { gw, store, hooks } = gateway([scheduler]);
    hooks.afterRead = () => {
      (store.get('airflow-scheduler')!.metadata as { resourceVersion: string }).resourceVersion = '999999';
    };
    await expect(gw.scaleToZero(op, record(scheduler))).rejects.toMatchObject({ code: 409 });
  });

  it('suspends a CronJob recording its own suspend, once', async () => {
    const { gw, store, patches, events } = gateway([cleanup]);
    await gw.suspendCronJob(op, record(cleanup, 'CronJob'));
    expect(store.get('airflow-database-cleanup')!.spec).toMatchObject({ suspend: true });
    expect(events.map((e) => e.reason)).toEqual(['Suspended']);
    await gw.suspendCronJob(op, record(cleanup, 'CronJob'));
    expect(patches).toHaveLength(1);
  });

  it('restores a drained workload on the head: replicas back, record removed, a Released Event', async () => {
    const { gw, store, events } = gateway([scheduler]);
    await gw.scaleToZero(op, record(scheduler));
    expect(await gw.restore(op, record(scheduler), FROM_HEAD)).toBe(true);
    const restored = store.get('airflow-scheduler')!;
    expect(restored.spec).toMatchObject({ replicas: 3 });
    expect(
      (restored.metadata as { annotations?: Record<string, string> }).annotations?.[DRAINED_ANNOTATION],
    ).toBeUndefined();
    expect(events.at(-1)).toMatchObject({
      reason: 'Released',
      message: 'Released onto the 3.1.0 schema again with 3 replicas',
    });
  });

  it('a drained workload not on the head keeps waiting; a gone one needs nothing', async () => {
    const { gw, patches } = gateway([scheduler]);
    await gw.scaleToZero(op, record(scheduler));
    expect(await gw.restore(op, record(scheduler), TO_HEAD)).toBe(false);
    expect(patches).toHaveLength(1);
    expect(await gw.restore(op, { ...record(scheduler), name: 'airflow-gone' }, TO_HEAD)).toBe(true);
  });

  it('a drained workload whose target is past the built-in table is restored by its version (no head in the records)', async () => {
    const past = {
      ...op,
      fromVersion: '3.5.0',
      toVersion: '3.4.0',
      fromRevision: 'f0a1b2c3d4f2',
      toRevision: 'f0a1b2c3d4e6',
    };
    const onTarget = chartWorkload({
      kind: 'Deployment',
      component: 'scheduler',
      version: '3.4.0',
      replicas: 2,
      stored: true,
    });
    const { gw, store } = gateway([onTarget]);
    await gw.scaleToZero(past, record(onTarget));
    expect(await gw.restore(past, record(store.get('airflow-scheduler')!), past.toRevision)).toBe(true);
    expect(store.get('airflow-scheduler')!.spec).toMatchObject({ replicas: 2 });
    const stillOld = chartWorkload({
      kind: 'Deployment',
      component: 'scheduler',
      version: '3.5.0',
      replicas: 2,
      stored: true,
    });
    const other = gateway([stillOld]);
    await other.gw.scaleToZero(past, record(stillOld));
    expect(await other.gw.restore(past, record(other.store.get('airflow-scheduler')!), past.toRevision)).toBe(false);
  });

  it('releases a held workload, and moves a hold admitted under another id to the operation', async () => {
    const admitted = heldFor('dg-aaaaaaaaaaaaaaaa', scheduler);
    const { gw, store } = gateway([
      admitted,
      { ...scheduler, metadata: { ...(scheduler.metadata as object), name: 'airflow-unheld' } },
    ]);
    expect(await gw.joinHold(op, record(admitted))).toBe(true);
    expect(record(store.get('airflow-scheduler')!).holdOperation).toBe(op.id);
    expect(await gw.joinHold(op, { ...record(scheduler), name: 'airflow-unheld' }), 'not held: nothing to move').toBe(
      false,
    );
    expect(await gw.restore(op, record(store.get('airflow-scheduler')!), TO_HEAD)).toBe(true);
    expect(store.get('airflow-scheduler')!).toEqual({
      ...scheduler,
      metadata: { ...(scheduler.metadata as object), resourceVersion: expect.any(String) },
    });
  });

  it("an operation's Events go to the workloads it holds or drained and the one that opened it", () => {
    const records: WorkloadRecord[] = [
      { ...record(scheduler), holdOperation: op.id },
      { ...record(cleanup, 'CronJob'), drained: { operation: op.id, suspend: false } },
      { ...record(scheduler), name: 'airflow-other' },
    ];
    const { gw, events } = gateway([], records);
    gw.event(op, 'Warning', 'DowngradeHeld', 'x'.repeat(2000));
    expect(events.map((e) => (e.involvedObject as { name: string }).name).sort()).toEqual([
      'airflow-api-server',
      'airflow-database-cleanup',
      'airflow-scheduler',
    ]);
    expect(events.every((e) => (e.message as string).length === 1024 && e.type === 'Warning')).toBe(true);
  });
});
