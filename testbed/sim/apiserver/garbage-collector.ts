// The garbage collector: when an owner disappears, its dependents (by ownerReferences) whose
// owners are all gone are deleted in the background, like kube-controller-manager's GC; foreground
// deletions complete when their last dependent is gone.
import { RESOURCES } from '../resources.js';
import type { KubeObject, ResourceType, WatchEvent } from '../types.js';
import type { Registry } from './registry.js';

export interface GarbageCollector {
  stop(): void;
  /** Resolves once the work queued so far is done (tests). */
  idle(): Promise<void>;
}

function ownerExists(registry: Registry, uid: string, namespace: string | undefined): boolean {
  for (const type of Object.values(RESOURCES)) {
    const scope = type.namespaced ? namespace : undefined;
    if (registry.store.list(type, scope, (o) => o.metadata.uid === uid).items.length > 0) return true;
  }
  return false;
}

function ownerByUid(
  registry: Registry,
  uid: string,
  namespace: string | undefined,
): { type: ResourceType; obj: KubeObject } | undefined {
  for (const type of Object.values(RESOURCES)) {
    const scope = type.namespaced ? namespace : undefined;
    const found = registry.store.list(type, scope, (o) => o.metadata.uid === uid).items[0];
    if (found) return { type, obj: found };
  }
  return undefined;
}

export function startGarbageCollector(registry: Registry): GarbageCollector {
  let queue: Promise<void> = Promise.resolve();
  const enqueue = (work: () => void) => {
    queue = queue.then(
      () =>
        new Promise<void>((resolve) =>
          setImmediate(() => {
            try {
              work();
            } catch {
              // Objects may vanish between the event and the work: nothing left to collect.
            }
            resolve();
          }),
        ),
    );
  };

  const onDeleted = (event: WatchEvent) => {
    if (event.type !== 'DELETED') return;
    const gone = event.object;
    enqueue(() => {
      collectDependents(registry, gone);
      releaseOwners(registry, gone);
    });
  };

  // Read-only watchers: every event of every resource reaches the collector, which only reads deletions.
  const stops = Object.values(RESOURCES).map((type) =>
    registry.store.watch(type, undefined, undefined, onDeleted, { readOnly: true }),
  );
  return {
    stop: () => stops.forEach((stop) => stop()),
    idle: () => queue,
  };
}

function collectDependents(registry: Registry, gone: KubeObject): void {
  const uid = gone.metadata.uid;
  if (!uid) return;
  for (const { type, obj } of registry.dependentsOf(uid)) {
    const others = (obj.metadata.ownerReferences ?? []).filter((r) => r.uid !== uid);
    if (others.some((r) => ownerExists(registry, r.uid, obj.metadata.namespace))) continue;
    if (obj.metadata.deletionTimestamp) continue;
    registry.deleteNow(type, obj, { propagationPolicy: 'Background' });
  }
}

function releaseOwners(registry: Registry, gone: KubeObject): void {
  for (const ref of gone.metadata.ownerReferences ?? []) {
    const owner = ownerByUid(registry, ref.uid, gone.metadata.namespace);
    if (owner?.obj.metadata.deletionTimestamp) registry.releaseForegroundOwner(owner.type, owner.obj);
  }
}
