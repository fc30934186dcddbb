// Kubernetes Events off the critical path: a step enqueues its Events and goes on; a few writers
// post them in the background. Bounded (a burst of Events cannot grow memory or flood the API
// server), never silent (every failure and every drop is logged), and flushed on stop.
import type { Logger } from 'pino';

export interface EventQueueOptions {
  /** Posts one Event; rejects when it could not be written. */
  write: (namespace: string, event: Record<string, unknown>) => Promise<unknown>;
  logger: Logger;
  /** Events waiting beyond this are dropped (logged). */
  maxQueued?: number;
  /** Writes in flight at once. */
  concurrency?: number;
}

interface Pending {
  namespace: string;
  event: Record<string, unknown>;
}

export class EventQueue {
  private readonly queue: Pending[] = [];
  private active = 0;
  private idleWaiters: Array<() => void> = [];
  private readonly maxQueued: number;
  private readonly concurrency: number;
  dropped = 0;
  failed = 0;
  written = 0;

  constructor(private readonly options: EventQueueOptions) {
    this.maxQueued = options.maxQueued ?? 1000;
    this.concurrency = options.concurrency ?? 4;
  }

  /** Queues an Event; never waits and never throws. */
  record(namespace: string, event: Record<string, unknown>): void {
    if (this.queue.length >= this.maxQueued) {
      this.dropped++;
      this.options.logger.warn(
        { namespace, reason: event.reason, dropped: this.dropped },
        'event queue full; event not recorded',
      );
      return;
    }
    this.queue.push({ namespace, event });
    this.pump();
  }

  get pending(): number {
    return this.queue.length + this.active;
  }

  /** Resolves once every queued Event was written or failed. */
  flush(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (this.active < this.concurrency && this.queue.length > 0) {
      const next = this.queue.shift() as Pending;
      this.active++;
      void this.writeOne(next).finally(() => {
        this.active--;
        this.pump();
        if (this.pending === 0) this.notifyIdle();
      });
    }
  }

  private async writeOne({ namespace, event }: Pending): Promise<void> {
    try {
      await this.options.write(namespace, event);
      this.written++;
    } catch (error) {
      // Events are best effort: an operation never fails because one could not be written.
      this.failed++;
      this.options.logger.warn(
        { namespace, reason: event.reason, err: (error as Error).message },
        'could not record event',
      );
    }
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
