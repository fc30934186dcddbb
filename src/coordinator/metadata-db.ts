// A release's metadata database as the coordinator reads it: the alembic revision and whether a
// migration holds the lock, over the URL metadata-url.ts resolves (resolved again after any failure:
// a rotated password).
import { readAlembicRevision } from '../db/alembic.js';
import { isMigrationRunning } from '../db/migration-lock.js';
import { DatabasePools } from '../db/pool.js';
import type { ReleaseRef } from './metadata-url.js';

/** Where a release's metadata URL comes from (metadata-url.ts): resolved, and forgotten after a failure. */
export interface MetadataUrlSource {
  url(ref: ReleaseRef): Promise<string>;
  forget(ref: ReleaseRef): void;
}

export interface MetadataDatabaseOptions {
  urls: MetadataUrlSource;
  /** Replace the reads (tests). */
  readRevision?: (url: string) => Promise<string | null>;
  migrationRunning?: (url: string) => Promise<boolean>;
  /** A release's revision read differs from the last one read. */
  onRevision?: (namespace: string, release: string) => void;
}

export class MetadataDatabase {
  private readonly pools = new DatabasePools();
  private readonly lastRevisions = new Map<string, string>();

  constructor(private readonly options: MetadataDatabaseOptions) {}

  /** The revision last read of a release's database (none read yet: undefined). */
  lastRevision(namespace: string, release: string): string | undefined {
    return this.lastRevisions.get(`${namespace}/${release}`);
  }

  /** alembic_version of the operation's release (null: no table); throws when unreadable. */
  async revision(op: ReleaseRef): Promise<string | null> {
    const url = await this.options.urls.url(op);
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

  async migrationRunning(op: ReleaseRef): Promise<boolean> {
    const url = await this.options.urls.url(op);
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

  /** After a failed probe: the next one resolves the connection again (rotated password) and connects afresh. */
  private async forget(op: ReleaseRef, url: string): Promise<void> {
    this.options.urls.forget(op);
    await this.pools.discard(url);
  }
}
