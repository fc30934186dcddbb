// core/v1 Events as the real components write them, so `kubectl describe` shows what happened.
// Repeats of the same reason and message for the same object bump count/lastTimestamp instead.
import { randomBytes } from 'node:crypto';
import type { Store } from '../store.js';
import { RESOURCES } from '../resources.js';
import type { KubeObject } from '../types.js';
import { errorMessage, rfc3339, updateWithRetry, type Logger } from './common.js';

export type EventType = 'Normal' | 'Warning';

const MAX_REMEMBERED = 5000;

export class EventRecorder {
  private readonly seen = new Map<string, { namespace: string; name: string }>();

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  record(obj: KubeObject, type: EventType, reason: string, message: string, component: string): void {
    try {
      this.write(obj, type, reason, message, component);
    } catch (err) {
      this.log.warn({ reason, object: obj.metadata.name, err: errorMessage(err) }, 'could not record event');
    }
  }

  private write(obj: KubeObject, type: EventType, reason: string, message: string, component: string): void {
    const namespace = obj.metadata.namespace ?? 'default';
    const key = `${obj.metadata.uid}\u0000${type}\u0000${reason}\u0000${message}`;
    const now = rfc3339();
    const known = this.seen.get(key);
    if (known) {
      const bumped = updateWithRetry(this.store, RESOURCES.events, known.namespace, known.name, (ev) => {
        ev.count = (typeof ev.count === 'number' ? ev.count : 1) + 1;
        ev.lastTimestamp = now;
      });
      if (bumped) return;
    }
    if (this.seen.size >= MAX_REMEMBERED) this.seen.clear();
    const name = `${obj.metadata.name}.${randomBytes(8).toString('hex')}`;
    this.store.create(RESOURCES.events, {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: obj.metadata.name,
        namespace: obj.metadata.namespace,
        uid: obj.metadata.uid,
        resourceVersion: obj.metadata.resourceVersion,
      },
      reason,
      message,
      type,
      source: component === 'kubelet' ? { component, host: 'node-1' } : { component },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
      eventTime: null,
      reportingComponent: component,
      reportingInstance: component === 'kubelet' ? 'node-1' : '',
    });
    this.seen.set(key, { namespace, name });
  }
}
