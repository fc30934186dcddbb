import { describe, expect, it } from 'vitest';
import { DatabaseUrlError, isPostgresUrl, parseDatabaseUrl, redactConnectionString } from '../../src/db/connection.js';

describe('parseDatabaseUrl', () => {
  it('reads the chart-style SQLAlchemy URLs', () => {
    expect(parseDatabaseUrl('postgresql://airflow:secret@db.example:5433/airflow')).toEqual({
      host: 'db.example',
      port: 5433,
      database: 'airflow',
      user: 'airflow',
      password: 'secret',
    });
    expect(parseDatabaseUrl('postgresql+psycopg2://u:p@h/d')).toMatchObject({ host: 'h', port: 5432, database: 'd' });
    expect(parseDatabaseUrl('postgres://u@h/d')).toMatchObject({ user: 'u', database: 'd' });
    expect(parseDatabaseUrl('postgresql://u:p@[::1]:6432/d').host).toBe('::1');
  });

  it('decodes percent-encoded user, password and database', () => {
    const config = parseDatabaseUrl('postgresql://us%40r:p%3A%2Fw%40rd@h/air%20flow');
    expect(config).toMatchObject({ user: 'us@r', password: 'p:/w@rd', database: 'air flow' });
  });

  it('maps sslmode', () => {
    expect(parseDatabaseUrl('postgresql://h/d?sslmode=disable').ssl).toBe(false);
    expect(parseDatabaseUrl('postgresql://h/d?sslmode=prefer').ssl).toBe(false);
    expect(parseDatabaseUrl('postgresql://h/d?sslmode=require').ssl).toEqual({ rejectUnauthorized: false });
    expect(parseDatabaseUrl('postgresql://h/d?sslmode=verify-full').ssl).toEqual({ rejectUnauthorized: true });
    const verifyCa = parseDatabaseUrl('postgresql://h/d?sslmode=verify-ca').ssl as { rejectUnauthorized: boolean };
    expect(verifyCa.rejectUnauthorized).toBe(true);
    expect(parseDatabaseUrl('postgresql://h/d').ssl).toBeUndefined();
    expect(() => parseDatabaseUrl('postgresql://u:pw@h/d?sslmode=sometimes')).toThrow(/sslmode 'sometimes'/);
  });

  it('applies timeouts, the tighter of connect_timeout and ours', () => {
    expect(parseDatabaseUrl('postgresql://h/d?connect_timeout=10', { timeoutMs: 2000 })).toMatchObject({
      connectionTimeoutMillis: 2000,
      statement_timeout: 2000,
      query_timeout: 2000,
    });
    expect(parseDatabaseUrl('postgresql://h/d?connect_timeout=1', { timeoutMs: 2000 }).connectionTimeoutMillis).toBe(
      1000,
    );
  });

  it('rejects databases that are not PostgreSQL, with the scheme named and no password', () => {
    for (const url of [
      'mysql://u:hunter2@h/d',
      'mysql+mysqldb://u:hunter2@h/d',
      'sqlite:////tmp/airflow.db',
      'mssql+pyodbc://u:hunter2@h/d',
    ]) {
      expect(isPostgresUrl(url)).toBe(false);
      let error: unknown;
      try {
        parseDatabaseUrl(url);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(DatabaseUrlError);
      expect((error as Error).message).toMatch(/is not PostgreSQL/);
      expect((error as Error).message).not.toContain('hunter2');
    }
  });

  it('rejects malformed URLs clearly', () => {
    expect(() => parseDatabaseUrl('')).toThrow(/empty/);
    expect(() => parseDatabaseUrl('postgresql://u:pw@/d')).toThrow(/not a parsable URL/);
    expect(() => parseDatabaseUrl('postgresql:///d')).toThrow(/no host/);
    expect(parseDatabaseUrl('postgresql:///d?host=/run/pg').host).toBe('/run/pg');
    expect(() => parseDatabaseUrl('postgresql://u:pw@h')).toThrow(/no database name/);
    expect(() => parseDatabaseUrl('postgresql://u:pw@h1:1,h2:2/d')).toThrow(/several hosts/);
    expect(() => parseDatabaseUrl('postgresql://u:pw@h:99999/d')).toThrow();
    expect(() => parseDatabaseUrl('just text')).toThrow(/scheme '\(none\)'/);
  });
});

describe('redactConnectionString', () => {
  it('hides the password and keeps the rest', () => {
    expect(redactConnectionString('postgresql://airflow:secret@db:5432/airflow?sslmode=require')).toBe(
      'postgresql://airflow:***@db:5432/airflow?sslmode=require',
    );
    expect(redactConnectionString('postgresql+psycopg2://u:p@ss@h/d')).toBe('postgresql+psycopg2://u:***@h/d');
    expect(redactConnectionString('postgresql://h/d?user=u&password=secret&x=1')).toBe(
      'postgresql://h/d?user=u&password=***&x=1',
    );
    expect(redactConnectionString('postgresql://u@h/d')).toBe('postgresql://u@h/d');
    expect(redactConnectionString('postgresql://h:5432/d')).toBe('postgresql://h:5432/d');
  });
});
