import { describe, expect, it } from 'vitest';
import { SharedSchemaReads } from '../../../../testbed/sim/airflow/schema-reads.js';

function counting(revisionOf: (url: string, n: number) => string | null | Error) {
  const started: string[] = [];
  const reads = new SharedSchemaReads(async (url) => {
    started.push(url);
    const result = revisionOf(url, started.length);
    if (result instanceof Error) throw result;
    return result;
  });
  return { reads, started };
}

describe('SharedSchemaReads (containers of one database share a schema read)', () => {
  it('sends one read per database for the callers of one turn', async () => {
    const { reads, started } = counting((url) => `rev-of-${url}`);
    const results = await Promise.all([reads.read('a'), reads.read('a'), reads.read('b'), reads.read('a')]);
    expect(results).toEqual(['rev-of-a', 'rev-of-a', 'rev-of-b', 'rev-of-a']);
    expect(started).toEqual(['a', 'b']);
  });

  it('never hands a caller a read that started before it asked', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let n = 0;
    const reads = new SharedSchemaReads(async () => {
      n += 1;
      const mine = n;
      if (mine === 1) await gate;
      return `read-${mine}`;
    });
    const first = reads.read('db');
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(n).toBe(1); // the first read is in flight
    const second = reads.read('db'); // asked after it started: must get its own read
    release();
    expect(await first).toBe('read-1');
    expect(await second).toBe('read-2');
  });

  it('gives every caller of a failed read the error', async () => {
    const { reads, started } = counting((url, n) => (n === 1 ? new Error('connection refused') : url));
    const results = await Promise.allSettled([reads.read('x'), reads.read('x')]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    // and the next caller gets a new read, not the failed one
    expect(await reads.read('x')).toBe('x');
    expect(started).toEqual(['x', 'x']);
  });
});
