import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { goBuild, goBuildCacheRoot } from '../../testbed/go-build.js';

describe('goBuild', () => {
  const root = mkdtempSync(join(tmpdir(), 'adg-go-build-'));
  const previousCache = process.env.XDG_CACHE_HOME;
  process.env.XDG_CACHE_HOME = join(root, 'cache');
  const moduleDir = join(root, 'hello');
  execFileSync('mkdir', ['-p', moduleDir]);
  writeFileSync(join(moduleDir, 'go.mod'), 'module example.test/hello\n\ngo 1.26\n');
  writeFileSync(
    join(moduleDir, 'main.go'),
    'package main\n\nimport "fmt"\n\nvar stamp = "unset"\n\nfunc main() { fmt.Println("hello", stamp) }\n',
  );
  const outputs = [{ name: 'hello', pkg: '.', ldflags: ['-X', 'main.stamp=v1'] }];

  afterAll(() => {
    if (previousCache === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = previousCache;
    rmSync(root, { recursive: true, force: true });
  });

  it('builds with the version stamp, reuses the cached binary, and rebuilds when go.mod changes', async () => {
    const lines: string[] = [];
    const first = await goBuild({ moduleDir, outputs, log: (l) => lines.push(l) });
    expect(first.hello!.startsWith(goBuildCacheRoot())).toBe(true);
    expect(execFileSync(first.hello!, { encoding: 'utf8' })).toBe('hello v1\n');
    expect(lines.some((l) => l.startsWith('built hello in'))).toBe(true);

    const mtime = statSync(first.hello!).mtimeMs;
    const again = await goBuild({ moduleDir, outputs, log: (l) => lines.push(`again: ${l}`) });
    expect(again.hello).toBe(first.hello);
    expect(statSync(again.hello!).mtimeMs).toBe(mtime);
    expect(lines.filter((l) => l.startsWith('again:'))).toEqual([]);

    writeFileSync(join(moduleDir, 'go.mod'), 'module example.test/hello\n\ngo 1.26.0\n');
    const changed = await goBuild({ moduleDir, outputs });
    expect(changed.hello).not.toBe(first.hello);
  }, 120_000);

  it('fails loudly, with the compiler output, when the module does not build', async () => {
    const broken = join(root, 'broken');
    execFileSync('mkdir', ['-p', broken]);
    writeFileSync(join(broken, 'go.mod'), 'module example.test/broken\n\ngo 1.26\n');
    writeFileSync(join(broken, 'main.go'), 'package main\n\nfunc main() { undefinedThing() }\n');
    await expect(goBuild({ moduleDir: broken, outputs: [{ name: 'broken', pkg: '.' }] })).rejects.toThrow(
      /undefined: undefinedThing/,
    );
  }, 120_000);
});
