// The simulated Airflow's migration scripts: Airflow's real migration chain, read from the copy in
// testbed/sim/airflow/airflow-migrations.json and never from the guard's own table (src/core/heads.ts),
// so the simulated cluster is an independent oracle for that table.
import chainFile from './airflow-migrations.json' with { type: 'json' };
import { compareVersions, parseAirflowVersion, type AirflowVersion } from '../../../src/core/versions.js';

export interface Migration {
  revision: string;
  downRevision: string;
  /** The Airflow release that introduced it. */
  release: AirflowVersion;
}

export interface ReleaseHead {
  release: AirflowVersion;
  /** The last revision the release introduced. */
  head: string;
}

/** Checks the file's shape and that it is one linear chain; throws naming the first bad entry. */
export function parseMigrationChain(data: unknown): Migration[] {
  const list = (data as { migrations?: unknown })?.migrations;
  if (!Array.isArray(list) || list.length === 0)
    throw new Error('airflow-migrations.json: "migrations" must be a non-empty list');
  const chain: Migration[] = [];
  for (const [index, entry] of list.entries()) {
    const { revision, down_revision: downRevision, airflow_version: text } = (entry ?? {}) as Record<string, unknown>;
    const release = typeof text === 'string' ? parseAirflowVersion(text) : undefined;
    if (typeof revision !== 'string' || typeof downRevision !== 'string' || !release) {
      throw new Error(
        `airflow-migrations.json: entry ${index} needs string revision, down_revision and an airflow_version`,
      );
    }
    const previous = chain.at(-1);
    if (previous && downRevision !== previous.revision) {
      throw new Error(
        `airflow-migrations.json: ${revision} revises ${downRevision}, not the entry before it (${previous.revision})`,
      );
    }
    if (previous && compareVersions(release, previous.release) < 0) {
      throw new Error(
        `airflow-migrations.json: ${revision} (${text}) is listed after a migration of ${previous.release.text}`,
      );
    }
    chain.push({ revision, downRevision, release });
  }
  return chain;
}

/** Each release that introduced migrations and the head it ends at, oldest first. */
export function releaseHeads(chain: readonly Migration[]): ReleaseHead[] {
  const heads: ReleaseHead[] = [];
  for (const migration of chain) {
    const last = heads.at(-1);
    if (last && compareVersions(last.release, migration.release) === 0) last.head = migration.revision;
    else heads.push({ release: migration.release, head: migration.revision });
  }
  return heads;
}

export const MIGRATIONS: readonly Migration[] = parseMigrationChain(chainFile);
export const RELEASE_HEADS: readonly ReleaseHead[] = releaseHeads(MIGRATIONS);
