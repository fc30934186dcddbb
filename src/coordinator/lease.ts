// The release Leases this replica holds, kept in memory: "do I drive this release?" is answered
// without a round trip while the Lease is fresh; the API is used only to acquire, and to renew at a
// third of the duration. While a step runs, a timer keeps renewing, so a long exec never outlives the
// Lease and lets another replica take it; if renewal shows the Lease lost, the step is told so and
// must not write its result.
import type { Logger } from 'pino';
import { valueAt } from '../core/objects.js';
import { isConflict, type Cluster } from '../k8s/cluster.js';
import { MANAGED_BY, MANAGED_BY_LABEL, leaseName } from './operation.js';

export interface LeaseKeeperOptions {
  identity: string;
  durationSeconds: number;
  cluster: Pick<Cluster, 'find' | 'create' | 'replace'>;
  logger: Logger;
  now?: () => number;
}

interface Held {
  /** The Lease as last written by us (its resourceVersion lets a renewal skip the GET). */
  lease: Record<string, unknown>;
  /** Local time the last successful write was sent: our claim runs until renewedAt + duration. */
  renewedAt: number;
}

export interface Holding<T> {
  value: T;
  /** The Lease was lost (or could not be renewed before it expired) while fn ran. */
  lost: boolean;
}

export class LeaseKeeper {
  private readonly held = new Map<string, Held>();
  private readonly inFlight = new Map<string, Promise<boolean>>();
  /** Leases another replica holds: not read again before this (local) time, when they could expire. */
  private readonly blocked = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly options: LeaseKeeperOptions) {
    if (!(options.durationSeconds > 0))
      throw new Error(`lease duration must be positive, got ${options.durationSeconds}`);
    this.now = options.now ?? Date.now;
  }

  private get durationMs(): number {
    return this.options.durationSeconds * 1000;
  }

  /** Renewal period: a third of the duration, so two renewals may fail before the Lease expires. */
  get renewEveryMs(): number {
    return this.durationMs / 3;
  }

  /** Whether this replica believes it holds the release's Lease right now (no API call). */
  holds(namespace: string, release: string): boolean {
    const h = this.held.get(key(namespace, release));
    return h !== undefined && this.now() < h.renewedAt + this.durationMs;
  }

  /** True when this replica holds the Lease (acquiring or renewing it when needed). */
  acquire(namespace: string, release: string): Promise<boolean> {
    const k = key(namespace, release);
    const h = this.held.get(k);
    if (h && this.now() - h.renewedAt < this.renewEveryMs) return Promise.resolve(true);
    if (!h && this.now() < (this.blocked.get(k) ?? 0)) return Promise.resolve(false);
    // One round trip at a time per Lease: a renewal timer and a step must not race each other.
    const running = this.inFlight.get(k);
    if (running) return running;
    const attempt = this.claim(namespace, release).finally(() => this.inFlight.delete(k));
    this.inFlight.set(k, attempt);
    return attempt;
  }

  /**
   * Runs fn while renewing the Lease every third of its duration. `lost` is true when another replica
   * took it, or renewals kept failing until it expired: the caller must then discard fn's result.
   */
  async whileHolding<T>(namespace: string, release: string, fn: () => Promise<T>): Promise<Holding<T>> {
    let lost = !this.holds(namespace, release);
    const check = async (): Promise<void> => {
      if (lost) return;
      try {
        if (!(await this.acquire(namespace, release))) lost = true;
      } catch (error) {
        this.options.logger.warn(
          { namespace, release, err: (error as Error).message },
          'could not renew the Lease; retrying',
        );
      }
      if (!this.holds(namespace, release)) lost = true;
    };
    const timer = setInterval(() => void check(), Math.max(50, this.renewEveryMs / 2));
    timer.unref();
    try {
      const value = await fn();
      if (!lost && !this.holds(namespace, release)) lost = true;
      return { value, lost };
    } finally {
      clearInterval(timer);
    }
  }

  private async claim(namespace: string, release: string, afterConflict = false): Promise<boolean> {
    const k = key(namespace, release);
    const name = leaseName(release);
    const sentAt = this.now();
    const nowText = new Date(sentAt).toISOString().replace('Z', '000Z'); // MicroTime
    const spec = {
      holderIdentity: this.options.identity,
      leaseDurationSeconds: this.options.durationSeconds,
      renewTime: nowText,
    };
    const mine = this.held.get(k);
    try {
      // Renewing our own Lease: PUT on the copy we wrote last; a 409 means someone else wrote it.
      let lease: Record<string, unknown> | undefined = mine?.lease;
      if (!lease) {
        lease = await this.options.cluster.find<Record<string, unknown>>('Lease', namespace, name);
      }
      if (!lease) {
        const created = await this.options.cluster.create<Record<string, unknown>>('Lease', namespace, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace, labels: { [MANAGED_BY_LABEL]: MANAGED_BY } },
          spec: { ...spec, acquireTime: nowText, leaseTransitions: 0 },
        });
        this.held.set(k, { lease: created, renewedAt: sentAt });
        return true;
      }
      const holder = valueAt(lease, ['spec', 'holderIdentity']);
      const renew = Date.parse(String(valueAt(lease, ['spec', 'renewTime']) ?? ''));
      const duration = Number(valueAt(lease, ['spec', 'leaseDurationSeconds']) ?? this.options.durationSeconds);
      const expired = !Number.isFinite(renew) || renew + duration * 1000 < sentAt;
      if (holder && holder !== this.options.identity && !expired) {
        this.held.delete(k);
        this.blocked.set(k, Math.min(renew + duration * 1000, sentAt + duration * 1000));
        return false;
      }
      this.blocked.delete(k);
      const ours = holder === this.options.identity;
      const transitions = Number(valueAt(lease, ['spec', 'leaseTransitions']) ?? 0);
      const written = await this.options.cluster.replace<Record<string, unknown>>('Lease', namespace, name, {
        ...lease,
        spec: {
          ...spec,
          acquireTime: ours ? valueAt(lease, ['spec', 'acquireTime']) : nowText,
          leaseTransitions: ours ? transitions : transitions + 1,
        },
      });
      this.held.set(k, { lease: written, renewedAt: sentAt });
      return true;
    } catch (error) {
      if (!isConflict(error)) throw error;
      // Our copy was stale or another replica raced us: drop it; the next attempt reads the cluster.
      this.held.delete(k);
      if (mine && !afterConflict && this.now() < mine.renewedAt + this.durationMs)
        return this.claimFresh(namespace, release, mine.renewedAt);
      return false;
    }
  }

  /** After a conflict on renewal: read the Lease once; if it is still ours, renew on the fresh copy. */
  private async claimFresh(namespace: string, release: string, renewedAt: number): Promise<boolean> {
    const lease = await this.options.cluster.find<Record<string, unknown>>('Lease', namespace, leaseName(release));
    if (!lease || valueAt(lease, ['spec', 'holderIdentity']) !== this.options.identity) return false;
    this.held.set(key(namespace, release), { lease, renewedAt });
    return this.claim(namespace, release, true);
  }
}

function key(namespace: string, release: string): string {
  return `${namespace}/${release}`;
}
