// What the real API server's storage fills in after admission and keeps on update: a Service's
// cluster IP (from 10.96.0.0/16 here, as kubeadm's default service CIDR begins), and the binding of
// a PersistentVolumeClaim, which in this cluster (one default StorageClass, Immediate binding) is
// Bound at once. Allocation is after admission, as in the real server: webhooks never see the IP.
import { RESOURCES } from '../resources.js';
import type { Store } from '../store.js';
import type { KubeObject, ResourceType } from '../types.js';

type Obj = Record<string, unknown>;

const FIRST = 10; // 10.96.0.1 is the kubernetes Service, the next few are conventionally DNS.
const LAST = 65_534;

function ipOf(n: number): string {
  return `10.96.${Math.floor(n / 256)}.${n % 256}`;
}

function needsClusterIP(spec: Obj): boolean {
  return spec.type !== 'ExternalName' && (spec.clusterIP === undefined || spec.clusterIP === '');
}

/** Gives a new Service its cluster IP (unless headless or ExternalName). */
export function allocateOnCreate(store: Store, type: ResourceType, o: KubeObject): void {
  if (type !== RESOURCES.services) return;
  const spec = (o.spec ??= {}) as Obj;
  if (!needsClusterIP(spec)) {
    if (spec.clusterIP === 'None') spec.clusterIPs = ['None'];
    return;
  }
  const used = new Set(store.list(RESOURCES.services).items.map((s) => ((s.spec ?? {}) as Obj).clusterIP));
  for (let n = FIRST; n <= LAST; n++) {
    const ip = ipOf(n);
    if (used.has(ip)) continue;
    spec.clusterIP = ip;
    spec.clusterIPs = [ip];
    spec.ipFamilies ??= ['IPv4'];
    spec.ipFamilyPolicy ??= 'SingleStack';
    return;
  }
  throw new Error('the simulated service CIDR 10.96.0.0/16 is full');
}

/** A Service update that leaves out the cluster IP keeps the allocated one (the real server does too). */
export function keepOnUpdate(type: ResourceType, current: KubeObject, next: KubeObject): void {
  if (type !== RESOURCES.services) return;
  const before = (current.spec ?? {}) as Obj;
  const after = (next.spec ??= {}) as Obj;
  if (after.type === 'ExternalName') return;
  for (const key of ['clusterIP', 'clusterIPs', 'ipFamilies', 'ipFamilyPolicy']) {
    if ((after[key] === undefined || after[key] === '') && before[key] !== undefined) after[key] = before[key];
  }
}

/** The status of a new object that the cluster's controllers would give it at once. */
export function initialStatus(type: ResourceType, o: KubeObject): Obj | undefined {
  if (type !== RESOURCES.persistentvolumeclaims) return undefined;
  const spec = (o.spec ?? {}) as { accessModes?: string[]; resources?: { requests?: Obj } };
  const storage = spec.resources?.requests?.storage;
  return {
    phase: 'Bound',
    accessModes: spec.accessModes ?? ['ReadWriteOnce'],
    ...(storage !== undefined ? { capacity: { storage } } : {}),
  };
}
