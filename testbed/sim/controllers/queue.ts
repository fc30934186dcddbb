// A work queue keyed by "namespace/name": watch events add keys, one setImmediate drains them,
// so a reconcile never runs inside the store write that triggered it and bursts collapse.
import { errorMessage, type Logger } from './common.js';

export class WorkQueue {
  private readonly pending = new Set<string>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private scheduled: NodeJS.Immediate | undefined;
  private stopped = false;
  private busy = 0;

  constructor(
    private readonly name: string,
    private readonly handle: (key: string) => void,
    private readonly log: Logger,
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    this.pending.add(key);
    this.scheduled ??= setImmediate(() => this.drain());
  }

  /** Adds the key after `ms`; only the earliest of several delayed adds is kept. */
  addAfter(key: string, ms: number): void {
    if (this.stopped) return;
    const at = Date.now() + ms;
    const existing = this.delayed.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(
      () => {
        this.delayed.delete(key);
        this.add(key);
      },
      Math.max(0, ms),
    );
    timer.unref();
    this.delayed.set(key, { at, timer });
  }

  /** True while keys wait to be processed now (delayed keys do not count). */
  get idle(): boolean {
    return this.pending.size === 0 && this.busy === 0;
  }

  stop(): void {
    this.stopped = true;
    if (this.scheduled) clearImmediate(this.scheduled);
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    this.pending.clear();
  }

  private drain(): void {
    this.scheduled = undefined;
    const keys = [...this.pending];
    this.pending.clear();
    this.busy++;
    try {
      for (const key of keys) this.process(key);
    } finally {
      this.busy--;
    }
  }

  private process(key: string): void {
    if (this.stopped) return;
    try {
      this.handle(key);
      this.failures.delete(key);
    } catch (err) {
      // Odd objects must not stop the controller: log, retry a few times with backoff, then wait for the next event.
      const count = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, count);
      this.log.warn({ controller: this.name, key, attempt: count, err: errorMessage(err) }, 'reconcile failed');
      if (count <= 5) this.addAfter(key, 50 * 2 ** count);
      else this.failures.delete(key);
    }
  }
}
