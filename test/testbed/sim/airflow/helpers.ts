// Shared by the simulated-Airflow tests: an ExecIO that records output, and alembic_version access.
import pg from 'pg';
import { readAlembicRevision } from '../../../../src/db/alembic.js';
import type { ExecIO } from '../../../../testbed/sim/types.js';

export interface RecordingIO extends ExecIO {
  out(): string;
  err(): string;
  abort(): void;
  /** Resolves once stdout contains the text. */
  waitForOutput(text: string | RegExp, timeoutMs?: number): Promise<void>;
}

/** stdin: lines sent then closed; 'open' keeps it open until aborted (an interactive client). */
export function recordingIO(stdin: string[] | 'open' = []): RecordingIO {
  const controller = new AbortController();
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  async function* input(): AsyncIterable<Buffer> {
    if (stdin === 'open') {
      await new Promise<void>((resolve) =>
        controller.signal.addEventListener('abort', () => resolve(), { once: true }),
      );
      return;
    }
    for (const line of stdin) yield Buffer.from(line);
  }
  return {
    stdout: (chunk) => {
      stdout += chunk.toString();
      for (const wake of waiters) wake();
    },
    stderr: (chunk) => {
      stderr += chunk.toString();
    },
    stdin: input(),
    signal: controller.signal,
    out: () => stdout,
    err: () => stderr,
    abort: () => controller.abort(),
    waitForOutput: (text, timeoutMs = 5000) =>
      new Promise<void>((resolve, reject) => {
        const matches = () => (typeof text === 'string' ? stdout.includes(text) : text.test(stdout));
        if (matches()) return resolve();
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no output ${String(text)} within ${timeoutMs} ms; got:\n${stdout}`));
        }, timeoutMs);
        const check = () => {
          if (!matches()) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
      }),
  };
}

export async function setRevision(url: string, revision: string | null): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('DROP TABLE IF EXISTS alembic_version');
    if (revision === null) return;
    await client.query('CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)');
    await client.query('INSERT INTO alembic_version VALUES ($1)', [revision]);
  } finally {
    await client.end();
  }
}

export async function getRevision(url: string): Promise<string | null> {
  return (await readAlembicRevision(url)).revision;
}

export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
