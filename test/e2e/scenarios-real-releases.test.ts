// Releases as real charts and images run them: an Airflow newer than the guard's table of schema
// heads (its heads read from the running image), and metadata connections found where the pods get them.
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_IMAGE_CATALOG } from '../../src/sim/airflow/index.js';
import {
  expectDowngraded,
  FULL_SEQUENCE,
  headOf,
  helmUpgrade,
  stepSequence,
  startE2E,
  type E2E,
  type ReleaseSpec,
} from './harness.js';

let e2e: E2E | undefined;
afterEach(async () => {
  await e2e?.stop();
  e2e = undefined;
});

/** A release past the table: 3.4.0 adds two migrations the guard's table does not know. */
const FUTURE = { version: '3.4.0', migrations: ['f0a1b2c3d4e5', 'f0a1b2c3d4e6'] };

describe('releases past the built-in table of schema heads', () => {
  it('3.4.0 -> 3.3.0: the heads come from the 3.4.0 image itself, the downgrade runs to 3.3.0', async () => {
    DEFAULT_IMAGE_CATALOG.declare(
      `apache/airflow:${FUTURE.version}`,
      { 'org.apache.airflow.version': FUTURE.version },
      FUTURE.migrations,
    );
    e2e = await startE2E();
    const s: ReleaseSpec = { release: 'future', namespace: 'future', version: FUTURE.version };
    await e2e.installRelease(s);
    expect(await e2e.revision()).toBe(FUTURE.migrations.at(-1));
    const guard = await e2e.startGuard();
    await helmUpgrade(e2e, s, '3.3.0', 'post-upgrade');
    const op = await expectDowngraded(e2e, s, '3.3.0');
    expect(stepSequence(op)).toEqual(FULL_SEQUENCE);
    expect(op).toMatchObject({ fromRevision: FUTURE.migrations.at(-1), toRevision: headOf('3.3.0') });
    expect(guard.logs.join('\n')).toMatch(/schema heads from the heads map of image sha256:[0-9a-f]{64}/);
    // The image's map agrees with the table where both know a version: nothing to warn about.
    expect(guard.logs.join('\n')).not.toMatch(/disagrees with the built-in table/);
  });
});
