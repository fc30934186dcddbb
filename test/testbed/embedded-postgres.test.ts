// The embedded PostgreSQL of the demo, `npm run cluster` and the tests: destroy() removes its data
// directory even when the server already went (Ctrl-C in a terminal signals the postgres child too).
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../../testbed/embedded-postgres.js';

describe('embedded PostgreSQL', () => {
  it('destroy() after the server was stopped from outside still removes its data directory', async () => {
    const server = await startEmbeddedPostgres({ maxConnections: 10 });
    const pid = server.pid();
    expect(pid).toBeGreaterThan(0);
    const { readlinkSync } = await import('node:fs');
    const dataDir = dirname(readlinkSync(`/proc/${pid}/cwd`));
    process.kill(pid!, 'SIGINT');
    const deadline = Date.now() + 20_000;
    while (existsSync(`/proc/${pid}`) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    await server.destroy();
    expect(existsSync(dataDir)).toBe(false);
  });
});
