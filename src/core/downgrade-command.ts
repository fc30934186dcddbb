// The Airflow CLI commands the coordinator execs, as argv arrays built only from validated values.
// We pass --to-revision rather than --to-version: how --to-version resolves depends on the running
// image's Airflow version (reference/airflow.md), the head does not.
import { isValidRevision } from './heads.js';

export class UnsafeCommandError extends Error {
  override name = 'UnsafeCommandError';
}

function requireRevision(revision: unknown): string {
  if (!isValidRevision(revision)) {
    throw new UnsafeCommandError(
      `refusing to build a command with revision ${JSON.stringify(String(revision)).slice(0, 60)}: not a valid alembic revision`,
    );
  }
  return revision;
}

/** `airflow db downgrade --to-revision <head> --yes` (without --yes a non-interactive exec dies on EOF). */
export function downgradeArgv(toRevision: string): string[] {
  return ['airflow', 'db', 'downgrade', '--to-revision', requireRevision(toRevision), '--yes'];
}

/** `airflow db migrate --to-revision <head>`: rolls a partial downgrade forward again. */
export function migrateArgv(toRevision: string): string[] {
  return ['airflow', 'db', 'migrate', '--to-revision', requireRevision(toRevision)];
}

/** For messages only: the argv as an operator would type it (values are validated, no quoting needed). */
export function formatArgv(argv: readonly string[]): string {
  return argv.join(' ');
}
