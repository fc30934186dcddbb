import { describe, expect, it } from 'vitest';
import { outputExcerpt } from '../../src/audit/records.js';
import { redactJson, redactRecord, redactText } from '../../src/audit/redact.js';
import { toJsonb } from '../../src/audit/store.js';
import { stepRecord } from './fixtures.js';

describe('redaction', () => {
  it('hides passwords in URLs, including ones with an unencoded @', () => {
    expect(redactText('postgresql://airflow:s3cret@db:5432/airflow')).toBe('postgresql://airflow:***@db:5432/airflow');
    expect(redactText('uri postgresql+psycopg2://u:p@ss@h/db ok')).toBe('uri postgresql+psycopg2://u:***@h/db ok');
    expect(redactText('redis://:tok3n@redis:6379/0')).toBe('redis://:***@redis:6379/0');
    expect(redactText('https://example.com/path?x=1')).toBe('https://example.com/path?x=1');
  });

  it('hides password= values in conninfo strings and command lines', () => {
    expect(redactText("host=db password='a b' user=x")).toBe('host=db password=*** user=x');
    expect(redactText('dbname=a PASSWORD=plain;next')).toBe('dbname=a PASSWORD=***;next');
    expect(redactText('nothing to see')).toBe('nothing to see');
  });

  it('hides Secret data, sensitive env values and sensitive keys in JSON documents', () => {
    const redacted = redactJson({
      kind: 'Secret',
      data: { a: 'YQ==', b: 'Yg==' },
      stringData: { c: 'c' },
      metadata: { name: 'not-secret' },
      env: [
        { name: 'AIRFLOW_CONN_MY_DB', value: 'mysql://u:p@h/d' },
        { name: 'AIRFLOW__CORE__FERNET_KEY', value: 'fernet' },
        { name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', value: 'x' },
        { name: 'LOG_LEVEL', value: 'debug' },
      ],
      auth: { token: 'abc', Authorization: 'Bearer xyz', tokenTtl: 30 },
    });
    expect(redacted).toEqual({
      kind: 'Secret',
      data: { a: '***', b: '***' },
      stringData: { c: '***' },
      metadata: { name: 'not-secret' },
      env: [
        { name: 'AIRFLOW_CONN_MY_DB', value: '***' },
        { name: 'AIRFLOW__CORE__FERNET_KEY', value: '***' },
        { name: 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN', value: '***' },
        { name: 'LOG_LEVEL', value: 'debug' },
      ],
      auth: { token: '***', Authorization: '***', tokenTtl: 30 },
    });
  });

  it('redacts the free-text fields of a record without touching the original', () => {
    const record = stepRecord({ command: ['psql', 'postgresql://u:pw@h/db'], error: 'password=pw failed' });
    const redacted = redactRecord(record);
    expect(redacted.command).toEqual(['psql', 'postgresql://u:***@h/db']);
    expect(redacted.error).toBe('password=*** failed');
    expect(record.error).toBe('password=pw failed');
  });

  it('refuses absurd nesting instead of recursing without end', () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 200; i++) deep = { next: deep };
    expect(JSON.stringify(redactJson(deep))).toContain('"***"');
  });
});

describe('output excerpts and jsonb text', () => {
  it('keep the last 4 KiB of output on a character boundary', () => {
    const output = 'é'.repeat(5000); // 2 bytes each
    const excerpt = outputExcerpt(output);
    expect(excerpt.startsWith('…')).toBe(true);
    expect(Buffer.byteLength(excerpt.slice(1))).toBeLessThanOrEqual(4096);
    expect(excerpt.slice(1)).toMatch(/^é+$/);
    expect(outputExcerpt('short')).toBe('short');
  });

  it('replaces NUL characters but not escaped backslashes followed by u0000', () => {
    expect(JSON.parse(toJsonb({ s: 'a\u0000b' }))).toEqual({ s: 'a\ufffdb' });
    expect(JSON.parse(toJsonb({ s: 'a\\u0000b' }))).toEqual({ s: 'a\\u0000b' });
  });
});

describe('redaction of odd values', () => {
  it('marks cycles instead of following them', () => {
    const node: Record<string, unknown> = { name: 'a' };
    node.self = node;
    node.list = [node, { password: 'x' }];
    expect(redactJson(node)).toEqual({ name: 'a', self: '[Circular]', list: ['[Circular]', { password: '***' }] });
  });
});
