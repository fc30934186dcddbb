import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { runAirflowCommand, ExecConnectionDropped, type CliContext } from '../../../../testbed/sim/airflow/cli.js';
import { createFaultInjector, type FaultInjector } from '../../../../testbed/sim/airflow/faults.js';
import { airflowImage } from '../../../../testbed/sim/airflow/image.js';
import { createTestDatabase, type TestDatabase } from '../../../support/postgres.js';
import { getRevision, recordingIO, setRevision, waitFor } from './helpers.js';

const V2105 = '5f2621c13b39';
const V300 = '29ce7909c52b';
const V303 = 'fe199e1abd77';
const V310 = 'cc92b33c6709';
const V320 = '1d6611b6ab7c';

let db: TestDatabase;
let faults: FaultInjector;

function context(imageRef: string, overrides: Partial<CliContext> = {}): CliContext {
  const image = airflowImage(imageRef);
  if (!image) throw new Error(`not an Airflow image: ${imageRef}`);
  return {
    image,
    databaseUrl: async () => db.url,
    target: { namespace: 'airflow', pod: 'airflow-api-server-abc', container: 'api-server' },
    faults,
    stepDurationMs: 2,
    secondMs: 20,
    ...overrides,
  };
}

async function run(
  imageRef: string,
  argv: string[],
  stdin: string[] | 'open' = [],
  overrides: Partial<CliContext> = {},
) {
  const io = recordingIO(stdin);
  const ctx = context(imageRef, overrides);
  const result = await runAirflowCommand({ ...ctx, target: { ...ctx.target, argv } }, argv, io);
  return { ...result, out: io.out(), err: io.err() };
}

beforeAll(async () => {
  db = await createTestDatabase('sim_cli');
});
afterAll(async () => {
  await db.drop();
});
beforeEach(() => {
  faults = createFaultInjector();
});

describe('airflow db downgrade', () => {
  it('steps back one revision at a time to the resolved version and logs like Airflow', async () => {
    await setRevision(db.url, V310);
    const r = await run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', '--to-version', '3.0.2', '--yes']);
    expect(r.exitCode).toBe(0);
    expect(await getRevision(db.url)).toBe(V300);
    expect(r.out).toContain(`Performing downgrade with database postgresql://postgres:***@127.0.0.1`);
    expect(r.out).toContain(`Attempting downgrade to revision ${V300}`);
    // Every revision of 3.1.0 and 3.0.3 (testbed/sim/airflow/airflow-migrations.json), newest first.
    const steps = [...r.out.matchAll(/Running downgrade (\w+) -> (\w+), Downgrade to Airflow ([\d.]+) schema/g)];
    expect(steps).toHaveLength(17);
    expect(steps[0]?.[1]).toBe(V310);
    expect(steps.slice(1).every((step, i) => step[1] === steps[i]?.[2])).toBe(true);
    expect(steps.at(-2)?.slice(2)).toEqual([V303, '3.0.3']);
    expect(steps.at(-1)?.slice(1)).toEqual([V303, V300, '3.0.0']);
    expect(r.out.trimEnd().endsWith('Downgrade complete')).toBe(true);
    expect(r.out).not.toMatch(/postgres:[0-9a-f]{24}@/); // password redacted
  });

  it('takes --to-revision and short options', async () => {
    await setRevision(db.url, V310);
    const r = await run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', '-r', V303, '-y']);
    expect(r.exitCode).toBe(0);
    expect(await getRevision(db.url)).toBe(V303);
  });

  it('is a no-op at the target and refuses a target above the database', async () => {
    await setRevision(db.url, V303);
    expect((await run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', '-n', '3.0.3', '-y'])).exitCode).toBe(0);
    const up = await run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', '-n', '3.1.0', '-y']);
    expect(up.exitCode).toBe(1);
    expect(up.err).toContain(`Destination ${V310} is not a valid downgrade target`);
    expect(await getRevision(db.url)).toBe(V303);
  });

  it('resolves like the running image: 2.10.5 cannot reach 2.11.0, 3.1.0 cannot take rc versions', async () => {
    await setRevision(db.url, V2105);
    const old = await run('apache/airflow:2.10.5', ['airflow', 'db', 'downgrade', '--to-version', '2.11.0', '--yes']);
    expect(old).toMatchObject({ exitCode: 1 });
    expect(old.err).toBe('Downgrading to version 2.11.0 is not supported.\n');
    const ok = await run('apache/airflow:2.10.5', ['airflow', 'db', 'downgrade', '--to-version', '2.9.3', '--yes']);
    expect(ok.exitCode).toBe(0);
    expect(await getRevision(db.url)).toBe('686269002441');
    await setRevision(db.url, V310);
    const rc = await run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', '--to-version', '3.0.2rc1', '--yes']);
    expect(rc.err).toBe('Downgrading to version 3.0.2rc1 is not supported.\n');
    expect(await getRevision(db.url)).toBe(V310);
  });

  it('refuses a database newer than the image and a target it does not know', async () => {
    await setRevision(db.url, V320);
    const newer = await run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', '-n', '3.0.2', '-y']);
    expect(newer.exitCode).toBe(1);
    expect(newer.err).toContain(`alembic.util.exc.CommandError: Can't locate revision identified by '${V320}'`);
    expect(await getRevision(db.url)).toBe(V320);
    await setRevision(db.url, V310);
    const unknown = await run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', '-r', 'abcdef123456', '-y']);
    expect(unknown.err).toContain("Can't locate revision identified by 'abcdef123456'");
  });

  it('validates its options like the real command', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [[], 1, /^Must provide either --to-revision or --to-version\.\n$/],
      [['-n', '3.0.2', '-r', V300], 1, /Cannot supply both `--to-revision` and `--to-version`\./],
      [['-n', '3.0.2', '--from-revision', V310], 1, /may only be used with `--show-sql-only`/],
      [['-n'], 2, /airflow command error: argument -n\/--to-version: expected one argument, see help above\./],
      [['-n', '3.0.2', '--force'], 2, /unrecognized arguments: --force/],
    ];
    for (const [args, code, message] of cases) {
      const r = await run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', ...args]);
      expect(r.exitCode, args.join(' ')).toBe(code);
      expect(r.err).toMatch(message);
    }
  });

  it('without --yes asks on stdin: y proceeds, n cancels, EOF dies', async () => {
    await setRevision(db.url, V310);
    const eof = await run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', '-n', '3.0.2']);
    expect(eof.exitCode).toBe(1);
    expect(eof.out).toContain('Proceed? (y/n)');
    expect(eof.err).toContain('EOFError: EOF when reading a line');
    const no = await run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', '-n', '3.0.2'], ['n\n']);
    expect(no).toMatchObject({ exitCode: 1, err: 'Cancelled\n' });
    expect(await getRevision(db.url)).toBe(V310);
    const yes = await run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', '-n', '3.0.2'], ['Y', '\n']);
    expect(yes.exitCode).toBe(0);
    expect(await getRevision(db.url)).toBe(V300);
  });

  it('prints SQL without changing the database with --show-sql-only', async () => {
    await setRevision(db.url, V310);
    const r = await run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', '-n', '3.0.2', '-s', '-y']);
    expect(r.exitCode).toBe(0);
    expect(r.out).toMatch(
      new RegExp(`UPDATE alembic_version SET version_num='\\w+' WHERE alembic_version.version_num = '${V310}';`),
    );
    expect(r.out).toContain(
      `UPDATE alembic_version SET version_num='${V300}' WHERE alembic_version.version_num = '${V303}';`,
    );
    expect(r.out).not.toContain('Downgrade complete');
    expect(await getRevision(db.url)).toBe(V310);
  });

  it('holds pg_advisory_lock(1) while it runs: a second downgrade waits for it', async () => {
    await setRevision(db.url, V310);
    const first = run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', '-n', '3.0.3', '-y'], [], {
      stepDurationMs: 400,
    });
    const probe = new pg.Client({ connectionString: db.url });
    await probe.connect();
    try {
      await waitFor(
        async () => {
          const held = await probe.query(
            "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 1 AND granted",
          );
          return held.rows[0].n === 1;
        },
        5000,
        'the advisory lock',
      );
      const lockedOut = await probe.query('SELECT pg_try_advisory_lock(1) AS got');
      expect(lockedOut.rows[0].got).toBe(false);
      const finished: string[] = [];
      const second = run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', '-n', '3.0.2', '-y']);
      const [a, b] = await Promise.all([
        first.finally(() => finished.push('first')),
        second.finally(() => finished.push('second')),
      ]);
      expect(finished).toEqual(['first', 'second']);
      expect(a.exitCode).toBe(0);
      expect(b.exitCode).toBe(0);
      // The second only started stepping once the first had released the lock at fe199e1abd77.
      expect(b.out).toContain(`Running downgrade ${V303} -> ${V300}`);
      expect(b.out).not.toContain(`Running downgrade ${V310}`);
      expect(await getRevision(db.url)).toBe(V300);
    } finally {
      await probe.end();
    }
  });

  it('stopped halfway leaves the intermediate head and exits 1', async () => {
    await setRevision(db.url, V310);
    faults.add({ command: 'db downgrade', fault: { kind: 'exec-halfway', steps: 1 } });
    const r = await run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', '-n', '3.0.2', '-y']);
    expect(r.exitCode).toBe(1);
    expect(r.err).toContain('server closed the connection unexpectedly');
    expect(r.out).not.toContain('Downgrade complete');
    expect(await getRevision(db.url)).toBe(V303);
  });

  it('a dropped halfway downgrade throws ExecConnectionDropped after committing its steps', async () => {
    await setRevision(db.url, V310);
    faults.add({ fault: { kind: 'exec-halfway', steps: 1, then: 'drop' }, times: 1 });
    await expect(
      run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', '-n', '3.0.2', '-y']),
    ).rejects.toBeInstanceOf(ExecConnectionDropped);
    expect(await getRevision(db.url)).toBe(V303);
  });

  it('a killed client stops it where it is: the committed steps stay, the lock is released', async () => {
    await setRevision(db.url, V310);
    const io = recordingIO();
    const ctx = context('apache/airflow:3.1.0', { stepDurationMs: 300 });
    const argv = ['airflow', 'db', 'downgrade', '-n', '3.0.2', '-y'];
    const running = runAirflowCommand({ ...ctx, target: { ...ctx.target, argv } }, argv, io);
    await io.waitForOutput(`Running downgrade ${V303} -> ${V300}`);
    io.abort();
    expect((await running).exitCode).toBe(137);
    expect(await getRevision(db.url)).toBe(V303);
    const probe = new pg.Client({ connectionString: db.url });
    await probe.connect();
    try {
      await waitFor(
        async () => (await probe.query('SELECT pg_try_advisory_lock(1) AS got')).rows[0].got === true,
        3000,
        'the lock',
      );
    } finally {
      await probe.end();
    }
  });

  it('reports a metadata database error', async () => {
    faults.add({ fault: { kind: 'db-error', message: 'connection to server at "db" failed: timeout expired' } });
    const r = await run('apache/airflow:3.1.0', ['airflow', 'db', 'downgrade', '-n', '3.0.2', '-y']);
    expect(r.exitCode).toBe(1);
    expect(r.err).toContain(
      'sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) connection to server at "db" failed: timeout expired',
    );
  });
});

describe('airflow db migrate', () => {
  it('creates alembic_version on a fresh database at the image head', async () => {
    await setRevision(db.url, null);
    const r = await run('apache/airflow:3.0.2', ['airflow', 'db', 'migrate']);
    expect(r.exitCode).toBe(0);
    expect(r.out).toContain('Database migrating done!');
    expect(await getRevision(db.url)).toBe(V300);
  });

  it('moves forward to the head, or to --to-version, and is a no-op at head', async () => {
    await setRevision(db.url, V300);
    expect((await run('apache/airflow:3.2.0', ['airflow', 'db', 'migrate', '--to-version', '3.1.0'])).exitCode).toBe(0);
    expect(await getRevision(db.url)).toBe(V310);
    const r = await run('apache/airflow:3.2.0', ['airflow', 'db', 'migrate']);
    expect(r.out).toContain(`Running upgrade ${V310} -> `);
    expect(r.out).toMatch(/Running upgrade \w+ -> 509b94a1042d, Upgrade to Airflow 3\.1\.8 schema/);
    expect(await getRevision(db.url)).toBe(V320);
    const again = await run('apache/airflow:3.2.0', ['airflow', 'db', 'migrate']);
    expect(again.exitCode).toBe(0);
    expect(again.out).not.toContain('Running upgrade');
  });

  it('fails on a database newer than the image', async () => {
    await setRevision(db.url, V310);
    const r = await run('apache/airflow:3.0.2', ['airflow', 'db', 'migrate']);
    expect(r.exitCode).toBe(1);
    expect(r.err).toContain(`Can't locate revision identified by '${V310}'`);
    expect(await getRevision(db.url)).toBe(V310);
  });

  it('migrates forward again after a halfway downgrade (the recovery path)', async () => {
    await setRevision(db.url, V303);
    const r = await run('apache/airflow:3.1.0', ['airflow', 'db', 'migrate']);
    expect(r.exitCode).toBe(0);
    expect(await getRevision(db.url)).toBe(V310);
  });

  it('knows `db upgrade` only in 2.x', async () => {
    await setRevision(db.url, '686269002441');
    const legacy = await run('apache/airflow:2.10.5', ['airflow', 'db', 'upgrade']);
    expect(legacy.exitCode).toBe(0);
    expect(legacy.err).toContain('`db upgrade` is deprecated');
    expect(await getRevision(db.url)).toBe(V2105);
    const three = await run('apache/airflow:3.0.2', ['airflow', 'db', 'upgrade']);
    expect(three.exitCode).toBe(2);
    expect(three.err).toContain("invalid choice: 'upgrade'");
  });
});

describe('airflow db check-migrations', () => {
  it('returns at once when the database head equals the image head', async () => {
    await setRevision(db.url, V300);
    const r = await run('apache/airflow:3.0.2', ['airflow', 'db', 'check-migrations', '--migration-wait-timeout=60']);
    expect(r).toMatchObject({ exitCode: 0 });
  });

  it('waits until a migration reaches its head', async () => {
    await setRevision(db.url, V300);
    const waiting = run('apache/airflow:3.1.0', ['airflow', 'db', 'check-migrations', '-t', '100']);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await run('apache/airflow:3.1.0', ['airflow', 'db', 'migrate']);
    const r = await waiting;
    expect(r.exitCode).toBe(0);
    expect(r.out).toContain('Waiting for migrations... 0 second(s)');
  });

  it('times out when the database is ahead of the image, naming both heads', async () => {
    await setRevision(db.url, V310);
    const r = await run('apache/airflow:3.0.2', ['airflow', 'db', 'check-migrations', '-t', '3']);
    expect(r.exitCode).toBe(1);
    expect(r.err).toContain(
      `TimeoutError: There are still unapplied migrations after 3 seconds. MigrationHead(s) in DB: {'${V310}'} | Migration Head(s) in Source Code: {'${V300}'}`,
    );
  });

  it('reports an empty set on a fresh database and rejects a non-integer timeout', async () => {
    await setRevision(db.url, null);
    const r = await run('apache/airflow:3.0.2', ['airflow', 'db', 'check-migrations', '-t', '0']);
    expect(r.err).toContain('after 1 seconds. MigrationHead(s) in DB: set()');
    const bad = await run('apache/airflow:3.0.2', ['airflow', 'db', 'check-migrations', '-t', 'soon']);
    expect(bad.exitCode).toBe(2);
    expect(bad.err).toContain("invalid int value: 'soon'");
  });
});

describe('other commands', () => {
  it('prints the version and the heads map of the image', async () => {
    expect((await run('apache/airflow:3.1.0', ['airflow', 'version'])).out).toBe('3.1.0\n');
    const r = await run('apache/airflow:3.0.3', [
      'python',
      '-c',
      'from airflow.utils.db import _REVISION_HEADS_MAP; import json; print(json.dumps(_REVISION_HEADS_MAP))',
    ]);
    expect(r.exitCode).toBe(0);
    const map = JSON.parse(r.out) as Record<string, string>;
    expect(map['3.0.3']).toBe(V303);
    expect(map['3.0.0']).toBe(V300);
    expect(map['3.1.0']).toBeUndefined();
    expect(r.out).toMatch(/^\{"2\.7\.0": "405de8318b3a", /);
  });

  it('answers unknown programs and subcommands like a shell and argparse', async () => {
    const missing = await run('apache/airflow:3.1.0', ['rm', '-rf', '/']);
    expect(missing.exitCode).toBe(127);
    expect(missing.err).toContain('executable file not found in $PATH');
    const bad = await run('apache/airflow:3.1.0', ['airflow', 'db', 'explode']);
    expect(bad.exitCode).toBe(2);
    expect(bad.err).toContain("argument COMMAND: invalid choice: 'explode'");
    const webserver = await run('apache/airflow:3.1.0', ['airflow', 'webserver']);
    expect(webserver.exitCode).toBe(2);
    const python = await run('apache/airflow:3.1.0', ['python', '-c', 'import os; os.system("id")']);
    expect(python.exitCode).toBe(1);
  });

  it('commands that do not touch the schema succeed without effect', async () => {
    await setRevision(db.url, V310);
    const r = await run('apache/airflow:3.0.2', ['airflow', 'dags', 'reserialize']);
    expect(r.exitCode).toBe(0);
    expect(await getRevision(db.url)).toBe(V310);
  });

  it('db check connects', async () => {
    const r = await run('apache/airflow:3.1.0', ['airflow', 'db', 'check']);
    expect(r.exitCode).toBe(0);
    expect(r.out).toContain('Connection successful.');
  });
});

describe('airflow config get-value', () => {
  it('prints the connection the container uses, as the guard asks it (fixed argv)', async () => {
    const url = 'postgresql://u:p%40ss@db.example:5432/airflow';
    const r = await run(
      'apache/airflow:3.1.0',
      ['airflow', 'config', 'get-value', 'database', 'sql_alchemy_conn'],
      [],
      {
        databaseUrl: async () => url,
      },
    );
    expect(r).toMatchObject({ exitCode: 0, out: `${url}\n` });
    const legacy = await run('apache/airflow:2.10.5', ['airflow', 'config', 'get-value', 'core', 'sql_alchemy_conn']);
    expect(legacy).toMatchObject({ exitCode: 0, out: `${db.url}\n` });
  });

  it('an option it does not know, or missing arguments, fail like Airflow', async () => {
    const unknown = await run('apache/airflow:3.1.0', ['airflow', 'config', 'get-value', 'core', 'sql_alchemy_conn']);
    expect(unknown).toMatchObject({ exitCode: 1, err: 'The option [core/sql_alchemy_conn] is not found in config.\n' });
    const missing = await run('apache/airflow:3.1.0', ['airflow', 'config', 'get-value', 'database']);
    expect(missing.exitCode).toBe(2);
    expect(missing.err).toMatch(/required: section, option/);
  });
});
