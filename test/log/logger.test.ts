import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, scrubSecrets } from '../../src/log/logger.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { lines, logger: createLogger({ name: 'test', destination, level: 'debug' }) };
}

describe('createLogger', () => {
  it('stable field names', () => {
    const { lines, logger } = capture();
    logger.info({ release: 'airflow' }, 'hello');
    const entry = JSON.parse(lines[0]!);
    expect(entry).toMatchObject({
      level: 'info',
      service: 'airflow-downgrade-guard',
      component: 'test',
      release: 'airflow',
      msg: 'hello',
    });
    expect(typeof entry.time).toBe('string');
  });

  it('redacts credential fields and connection string passwords', () => {
    const { lines, logger } = capture();
    logger.info(
      {
        connection: 'postgresql://a:b@db/x',
        password: 'p',
        nested: { token: 't', url: 'postgresql+psycopg2://airflow:s3cr3t@pg:5432/airflow' },
      },
      'connecting to postgresql://airflow:hunter2@db/airflow',
    );
    const text = lines.join('');
    expect(text).not.toMatch(/s3cr3t|hunter2|"p"|"t"|a:b@/);
    expect(text).toMatch(/postgresql\+psycopg2:\/\/airflow:\*\*\*@pg:5432\/airflow/);
    expect(text).toMatch(/\[redacted\]/);
  });

  it('scrubSecrets handles URLs and key=value DSNs', () => {
    expect(scrubSecrets('host=db user=airflow password=abc dbname=x')).toBe(
      'host=db user=airflow password=*** dbname=x',
    );
    expect(scrubSecrets('no secrets here')).toBe('no secrets here');
  });
});
