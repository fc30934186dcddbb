// A release's metadata database as the coordinator reads it: its URL from the release's Secret
// (cached a while, read again after any failure: a rotated password), the alembic revision, and
// whether a migration holds the lock.
import { valueAt } from '../core/objects.js';
import { readAlembicRevision } from '../db/alembic.js';
import { isMigrationRunning } from '../db/migration-lock.js';
import { DatabasePools } from '../db/pool.js';
import type { Cluster } from '../k8s/cluster.js';
import type { OperationState } from './operation.js';

/** How long a metadata URL read from its Secret is reused. */
const METADATA_URL_TTL_MS = 30_000;

export interface MetadataDatabaseOptions {
  cluster: Cluster;
  /** The metadata DB of a release: this Secret and key, unless overridden. */
  secretName: (release: string) => string;
  secretKey: string;
  /** Used instead of the Secret when set (all releases). */
  urlOverride?: string;
  /** Replace the reads (tests). */
  readRevision?: (url: string) => Promise<string | null>;
  migrationRunning?: (url: string) => Promise<boolean>;
  /** A release's revision read differs from the last one read. */
  onRevision?: (namespace: string, release: string) => void;
}

export class MetadataDatabase {
  private readonly pools = new DatabasePools();
  private readonly urls = new Map<string, { url: string; at: number }>();
  private readonly lastRevisions = new Map<string, string>();

  constructor(private readonly options: MetadataDatabaseOptions) {}

  /** The revision last read of a release's database (none read yet: undefined). */
  lastRevision(namespace: string, release: string): string | undefined {
    return this.lastRevisions.get(`${namespace}/${release}`);
  }

  /** alembic_version of the operation's release (null: no table); throws when unreadable. */
  async revision(op: OperationState): Promise<string | null> {
    const url = await this.url(op);
    let revision: string | null;
    try {
      revision = this.options.readRevision
        ? await this.options.readRevision(url)
        : (await readAlembicRevision(url, { timeoutMs: 5000, pools: this.pools })).revision;
    } catch (error) {
      await this.forget(op, url);
      throw error;
    }
    if (revision && this.lastRevisions.get(`${op.namespace}/${op.release}`) !== revision) {
      this.lastRevisions.set(`${op.namespace}/${op.release}`, revision);
      this.options.onRevision?.(op.namespace, op.release);
    }
    return revision;
  }

  async migrationRunning(op: OperationState): Promise<boolean> {
    const url = await this.url(op);
    try {
      return this.options.migrationRunning
        ? await this.options.migrationRunning(url)
        : await isMigrationRunning(url, 5000, this.pools);
    } catch (error) {
      await this.forget(op, url);
      throw error;
    }
  }

  close(): Promise<void> {
    return this.pools.close();
  }

  /** The release's metadata URL, read from its Secret at most every METADATA_URL_TTL_MS (and again after a DB error). */
  private async url(op: OperationState): Promise<string> {
    if (this.options.urlOverride) return this.options.urlOverride;
    const key = `${op.namespace}/${op.release}`;
    const cached = this.urls.get(key);
    if (cached && Date.now() - cached.at < METADATA_URL_TTL_MS) return cached.url;
    const url = await this.readSecret(op);
    this.urls.set(key, { url, at: Date.now() });
    return url;
  }

  /** After a failed probe: the next one reads the Secret again (rotated password) and connects afresh. */
  private async forget(op: OperationState, url: string): Promise<void> {
    this.urls.delete(`${op.namespace}/${op.release}`);
    await this.pools.discard(url);
  }

  private async readSecret(op: OperationState): Promise<string> {
    const name = this.options.secretName(op.release);
    const secret = await this.options.cluster.find('Secret', op.namespace, name);
    if (!secret) throw new Error(`metadata Secret ${op.namespace}/${name} not found`);
    const value = valueAt(secret, ['data', this.options.secretKey]);
    if (typeof value !== 'string')
      throw new Error(`metadata Secret ${op.namespace}/${name} has no key '${this.options.secretKey}'`);
    return Buffer.from(value, 'base64').toString('utf8');
  }
}
