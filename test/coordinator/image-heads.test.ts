import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ImageHeads } from '../../src/coordinator/image-heads.js';
import type { PodRecord } from '../../src/coordinator/release-view.js';
import { HEADS_MAP_ARGV } from '../../src/core/image-heads.js';
import type { ExecCommand, ExecOutcome } from '../../src/k8s/exec.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const MAP = { '3.3.0': 'd2f4e1b3c5a7', '3.4.0': 'f0a1b2c3d4e6' };

function pod(overrides: Partial<PodRecord> = {}): PodRecord {
  return {
    namespace: 'ns',
    name: 'rel-api-server-1',
    release: 'rel',
    component: 'api-server',
    role: 'metadata-db',
    version: '3.4.0',
    phase: 'Running',
    ready: true,
    terminating: false,
    container: 'api-server',
    imageDigest: DIGEST,
    ...overrides,
  };
}

function setup(map: Record<string, string> = MAP) {
  const calls: ExecCommand[] = [];
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  const exec = async (command: ExecCommand): Promise<ExecOutcome> => {
    calls.push(command);
    return { exitCode: 0, timedOut: false, stdout: `${JSON.stringify(map)}\n`, stderr: '', durationMs: 1 };
  };
  return { heads: new ImageHeads(exec, logger), calls, lines };
}

const where = { namespace: 'ns', release: 'rel' };
const pastTable = { fromVersion: '3.4.0', toVersion: '3.3.0', toRevision: 'd2f4e1b3c5a7' };

describe('ImageHeads.forOpening', () => {
  it('the built-in table is the fast path: no exec when it knows the from-version', async () => {
    const { heads, calls } = setup();
    const known = {
      fromVersion: '3.1.0',
      toVersion: '3.0.2',
      fromRevision: 'cc92b33c6709',
      toRevision: '29ce7909c52b',
    };
    const out = await heads.forOpening(known, [pod()], where);
    expect(out).toMatchObject({ fromRevision: 'cc92b33c6709', toRevision: '29ce7909c52b' });
    expect('heads' in out && out.heads.name).toBe('the built-in table');
    expect(calls).toEqual([]);
  });

  it('past the table: reads the map in a pod of the from-version once per image digest', async () => {
    const { heads, calls } = setup();
    const first = await heads.forOpening(pastTable, [pod({ version: '3.3.0', name: 'old' }), pod()], where);
    expect(first).toMatchObject({ fromRevision: 'f0a1b2c3d4e6', toRevision: 'd2f4e1b3c5a7' });
    expect(calls).toEqual([
      expect.objectContaining({ pod: 'rel-api-server-1', container: 'api-server', argv: HEADS_MAP_ARGV }),
    ]);
    expect('detail' in first && first.detail).toMatch(/\(read in pod rel-api-server-1 in \d+ ms\)$/);
    const again = await heads.forOpening(pastTable, [pod({ name: 'rel-api-server-2' })], where);
    expect('detail' in again && again.detail).toMatch(/\(cached\)$/);
    expect(calls).toHaveLength(1);
    expect(heads.cached).toBe(1);
    // Another digest is another image: read again.
    await heads.forOpening(pastTable, [pod({ imageDigest: `sha256:${'b'.repeat(64)}` })], where);
    expect(calls).toHaveLength(2);
  });

  it('waits while no Running and Ready pod of the from-version exists', async () => {
    const { heads, calls } = setup();
    const out = await heads.forOpening(pastTable, [pod({ ready: false }), pod({ version: '3.3.0' })], where);
    expect(out).toEqual({ wait: expect.stringMatching(/waiting for a Running and Ready pod of 3.4.0/) });
    expect(calls).toEqual([]);
  });

  it('the image wins over the hold annotations and the table, and says so', async () => {
    const { heads, lines } = setup({ '3.0.0': '29ce7909c52b', '3.3.0': 'eeeeeeeeeeee', '3.4.0': 'f0a1b2c3d4e6' });
    const out = await heads.forOpening(pastTable, [pod()], where);
    expect(out).toMatchObject({ fromRevision: 'f0a1b2c3d4e6', toRevision: 'eeeeeeeeeeee' });
    expect('detail' in out && out.detail).toMatch(/image wins: to-revision d2f4e1b3c5a7 -> eeeeeeeeeeee/);
    const log = lines.join('');
    expect(log).toMatch(/disagrees with the built-in table/);
    expect(log).toContain('"version":"3.3.0","table":"d2f4e1b3c5a7","image":"eeeeeeeeeeee"');
  });

  it('a map without the target version is a problem, not a guess', async () => {
    const { heads } = setup({ '3.4.0': 'f0a1b2c3d4e6' });
    expect(await heads.forOpening(pastTable, [pod()], where)).toEqual({
      problem: expect.stringMatching(/lists no head for 3.3.0/),
    });
  });
});

describe('ImageHeads.ofNewestPod (a resolution the table cannot place)', () => {
  /** Each pod prints the map of its own image. */
  function perPod(maps: Record<string, Record<string, string>>) {
    const calls: ExecCommand[] = [];
    const exec = async (command: ExecCommand): Promise<ExecOutcome> => {
      calls.push(command);
      const map = maps[command.pod] ?? MAP;
      return { exitCode: 0, timedOut: false, stdout: `${JSON.stringify(map)}\n`, stderr: '', durationMs: 1 };
    };
    return { heads: new ImageHeads(exec, pino({ level: 'silent' })), calls };
  }
  const NEWER = { ...MAP, '3.5.0': 'f0a1b2c3d4f2' };
  const newerDigest = `sha256:${'b'.repeat(64)}`;

  it('reads each image the release runs once and keeps the map that lists the newest version; versions need not be known', async () => {
    const { heads, calls } = perPod({ 'rel-api-server-new': NEWER });
    const pods = [
      pod({ version: undefined }),
      pod({ name: 'rel-scheduler-1', component: 'scheduler', version: undefined }),
      pod({ name: 'rel-api-server-new', version: undefined, imageDigest: newerDigest }),
      pod({ name: 'rel-api-server-starting', imageDigest: `sha256:${'c'.repeat(64)}`, ready: false }),
      pod({ name: 'rel-other', release: 'other', imageDigest: `sha256:${'d'.repeat(64)}` }),
    ];
    const read = await heads.ofNewestPod(pods, where);
    expect(read?.name).toBe(`the heads map of image ${newerDigest}`);
    expect(read?.detail).toMatch(/\(read in pod rel-api-server-new in \d+ ms\)$/);
    expect(read?.map.rows.map((r) => r.version.text)).toEqual(['3.3.0', '3.4.0', '3.5.0']);
    expect(calls.map((c) => c.pod).sort()).toEqual(['rel-api-server-1', 'rel-api-server-new']);
    expect((await heads.ofNewestPod(pods, where))?.detail).toMatch(/\(cached\)$/);
    expect(calls).toHaveLength(2);
  });

  it('opening: pods whose version the records do not know yet (private tags) are found by their map', async () => {
    const { heads } = perPod({ 'rel-api-server-new': NEWER });
    const held = { fromVersion: '3.5.0', toVersion: '3.4.0', fromRevision: 'f0a1b2c3d4f2', toRevision: 'f0a1b2c3d4e6' };
    const pods = [pod({ name: 'rel-api-server-new', version: undefined, imageDigest: newerDigest })];
    expect(await heads.forOpening(held, pods, where)).toMatchObject({
      fromRevision: 'f0a1b2c3d4f2',
      toRevision: 'f0a1b2c3d4e6',
      detail: expect.stringContaining(`the heads map of image ${newerDigest}`),
    });
    // A map that gives the from-version another head is not the from-version's image: wait.
    const other = perPod({});
    expect(await other.heads.forOpening(held, [pod({ version: undefined })], where)).toMatchObject({
      wait: expect.stringMatching(/waiting for a Running and Ready pod of 3\.5\.0/),
    });
  });

  it('no Running and Ready pod: undefined, nothing run', async () => {
    const { heads, calls } = perPod({});
    expect(await heads.ofNewestPod([pod({ ready: false }), pod({ phase: 'Pending' })], where)).toBeUndefined();
    expect(calls).toEqual([]);
  });
});
