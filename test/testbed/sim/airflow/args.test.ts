import { describe, expect, it } from 'vitest';
import {
  parseOptions,
  processArgv,
  shellWords,
  UsageError,
  type OptionSpec,
} from '../../../../testbed/sim/airflow/args.js';

const SPECS: OptionSpec[] = [
  { short: '-n', long: '--to-version', dest: 'to_version', metavar: 'VERSION' },
  { short: '-r', long: '--to-revision', dest: 'to_revision', metavar: 'REVISION' },
  { short: '-y', long: '--yes', dest: 'yes' },
  { short: '-s', long: '--show-sql-only', dest: 'show_sql_only' },
];

describe('argparse emulation', () => {
  it('accepts the forms argparse accepts', () => {
    expect(parseOptions(SPECS, ['--to-version', '3.0.2', '--yes'])).toEqual({ to_version: '3.0.2', yes: true });
    expect(parseOptions(SPECS, ['--to-version=3.0.2', '-y'])).toEqual({ to_version: '3.0.2', yes: true });
    expect(parseOptions(SPECS, ['-n3.0.2', '-ys'])).toEqual({ to_version: '3.0.2', yes: true, show_sql_only: true });
    expect(parseOptions(SPECS, ['--to-v', '3.0.2'])).toEqual({ to_version: '3.0.2' });
  });

  it('words errors like argparse', () => {
    expect(() => parseOptions(SPECS, ['--to-version'])).toThrow(
      new UsageError('argument -n/--to-version: expected one argument'),
    );
    expect(() => parseOptions(SPECS, ['-n', '--yes'])).toThrow(/expected one argument/);
    expect(() => parseOptions(SPECS, ['--to', 'x'])).toThrow(
      /ambiguous option: --to could match --to-version, --to-revision/,
    );
    expect(() => parseOptions(SPECS, ['--force', 'extra'])).toThrow('unrecognized arguments: --force extra');
    expect(() => parseOptions(SPECS, ['--yes=1'])).toThrow(/ignored explicit argument '1'/);
  });
});

describe('container argv', () => {
  it('unwraps the chart\'s bash -c "exec airflow …"', () => {
    expect(processArgv(undefined, ['bash', '-c', 'exec airflow scheduler'])).toEqual(['airflow', 'scheduler']);
    // The official image's ENTRYPOINT spelled out, as some charts and users do.
    expect(processArgv(['/usr/bin/dumb-init', '--', '/entrypoint'], ['bash', '-c', 'exec airflow scheduler'])).toEqual([
      'airflow',
      'scheduler',
    ]);
    expect(processArgv(['dumb-init', '--single-child', '--', '/entrypoint'], ['db', 'migrate'])).toEqual([
      'airflow',
      'db',
      'migrate',
    ]);
    expect(processArgv(['/entrypoint'], ['airflow', 'version'])).toEqual(['airflow', 'version']);
    // The community chart's check-db and wait-for-db-migrations init containers.
    expect(processArgv(['/usr/bin/dumb-init', '--'], ['bash', '-c', 'exec timeout 16s airflow db check'])).toEqual([
      'airflow',
      'db',
      'check',
    ]);
    expect(processArgv(['/usr/bin/dumb-init', '--'], ['bash', '-c', 'exec airflow db check-migrations -t 60'])).toEqual(
      ['airflow', 'db', 'check-migrations', '-t', '60'],
    );
    expect(processArgv(['bash', '-c'], ['exec \\\nairflow db migrate'])).toEqual(['airflow', 'db', 'migrate']);
    expect(processArgv(undefined, ['airflow', 'db', 'check-migrations', '--migration-wait-timeout=60'])).toEqual([
      'airflow',
      'db',
      'check-migrations',
      '--migration-wait-timeout=60',
    ]);
  });

  it('expands "$@" like bash -c does for the chart\'s create-user job', () => {
    expect(
      processArgv(undefined, ['bash', '-c', 'exec \\\nairflow users create "$@"', '--', '-r', 'Admin', '-u', 'ad min']),
    ).toEqual(['airflow', 'users', 'create', '-r', 'Admin', '-u', 'ad min']);
  });

  it('splits quoted words and refuses other shell syntax', () => {
    expect(shellWords(`airflow users create -u "ad min" -p 'x y'`)).toEqual([
      'airflow',
      'users',
      'create',
      '-u',
      'ad min',
      '-p',
      'x y',
    ]);
    expect(() => shellWords('airflow db migrate && rm -rf /')).toThrow(/unsupported shell syntax/);
    expect(() => shellWords('airflow "db')).toThrow(/unterminated quote/);
  });
});
