import { describe, expect, it } from 'vitest';
import { UnsafeCommandError, downgradeArgv, formatArgv, migrateArgv } from '../../src/core/downgrade-command.js';

describe('downgrade and migrate argv', () => {
  it('builds argv arrays from a validated head', () => {
    expect(downgradeArgv('29ce7909c52b')).toEqual([
      'airflow',
      'db',
      'downgrade',
      '--to-revision',
      '29ce7909c52b',
      '--yes',
    ]);
    expect(migrateArgv('cc92b33c6709')).toEqual(['airflow', 'db', 'migrate', '--to-revision', 'cc92b33c6709']);
    expect(formatArgv(downgradeArgv('1b2c3d4e5f6g'))).toBe('airflow db downgrade --to-revision 1b2c3d4e5f6g --yes');
  });

  it.each(['', '29ce7909c52b; rm -rf /', '$(id)', '--yes', 'A'.repeat(40), '29CE7909C52B', ' 29ce7909c52b'])(
    'throws for %j',
    (bad) => {
      expect(() => downgradeArgv(bad)).toThrow(UnsafeCommandError);
      expect(() => migrateArgv(bad)).toThrow(UnsafeCommandError);
    },
  );

  it('throws for values that are not strings', () => {
    expect(() => downgradeArgv(undefined as unknown as string)).toThrow(UnsafeCommandError);
  });
});
