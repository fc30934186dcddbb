import type { Store } from '../store.js';
import type { Logger } from './common.js';
import type { EventRecorder } from './events.js';

/** What every workload controller needs. */
export interface ControllerContext {
  store: Store;
  log: Logger;
  events: EventRecorder;
  /** terminationGracePeriodSeconds for pods whose spec does not say. */
  defaultGraceSeconds: number;
}
