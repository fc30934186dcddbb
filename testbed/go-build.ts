// Builds the Go programs of one of our Go modules (test infrastructure written in Go, with its
// dependencies in its own go.mod) and caches the binaries in a named cache:
//   ${XDG_CACHE_HOME:-~/.cache}/airflow-downgrade-guard/go-bin/<module dir name>-<key>/
// keyed on the module's go.mod and go.sum, the Go version and the requested outputs, so an
// up-to-date build costs a hash and a stat. GOTOOLCHAIN=local: a go.mod asking for another Go
// fails loudly instead of downloading a toolchain.
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';

export interface GoOutput {
  /** The binary's file name in the cache directory. */
  name: string;
  /** The package to build, as `go build` takes it (e.g. `./cmd/x` or `k8s.io/kubernetes/cmd/kube-apiserver`). */
  pkg: string;
  /** Extra -ldflags (e.g. `-X` version stamps); `-s -w` are always added. */
  ldflags?: string[];
  tags?: string[];
}

export interface GoBuildOptions {
  /** The directory holding go.mod. */
  moduleDir: string;
  outputs: GoOutput[];
  /** Progress lines (which binary is being built, and how long it took). */
  log?: (line: string) => void;
}

export function goBuildCacheRoot(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'airflow-downgrade-guard', 'go-bin');
}

const goEnv = (): NodeJS.ProcessEnv => ({ ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0' });

function goVersion(): string {
  try {
    return execFileSync('go', ['env', 'GOVERSION'], { encoding: 'utf8', env: goEnv() }).trim();
  } catch (error) {
    throw new Error(
      `Go is required to build the Go test programs (Go 1.26 with the module proxy): ${(error as Error).message}`,
    );
  }
}

function cacheKey(options: GoBuildOptions, version: string): string {
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'go.sum']) {
    const path = join(options.moduleDir, file);
    hash.update(`${file}\0${existsSync(path) ? readFileSync(path) : ''}\0`);
  }
  hash.update(version);
  hash.update(JSON.stringify(options.outputs));
  return hash.digest('hex').slice(0, 16);
}

function run(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('go', args, { cwd, env: goEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-20_000);
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`go ${args.join(' ')} (in ${cwd}) exited ${code}:\n${stderr}`)),
    );
  });
}

/** Builds what is missing and returns the path of each output by name. */
export async function goBuild(options: GoBuildOptions): Promise<Record<string, string>> {
  const version = goVersion();
  const dir = join(goBuildCacheRoot(), `${basename(options.moduleDir)}-${cacheKey(options, version)}`);
  const paths = Object.fromEntries(options.outputs.map((o) => [o.name, join(dir, o.name)]));
  if (options.outputs.every((o) => existsSync(paths[o.name]!))) return paths;
  mkdirSync(goBuildCacheRoot(), { recursive: true });
  const staging = `${dir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  mkdirSync(staging, { recursive: true });
  try {
    for (const output of options.outputs) {
      const started = Date.now();
      options.log?.(`building ${output.name} (${output.pkg}) with ${version}`);
      const ldflags = ['-s', '-w', ...(output.ldflags ?? [])].join(' ');
      const tags = output.tags?.length ? ['-tags', output.tags.join(',')] : [];
      await run(
        ['build', '-trimpath', ...tags, '-ldflags', ldflags, '-o', join(staging, output.name), output.pkg],
        options.moduleDir,
      );
      options.log?.(`built ${output.name} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
    try {
      renameSync(staging, dir);
    } catch (error) {
      // Another process finished the same build first: its binaries are as good as ours.
      if (!options.outputs.every((o) => existsSync(paths[o.name]!))) throw error;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return paths;
}
