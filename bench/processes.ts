// The separate processes of a benchmark run: the real `serve`, the floor server and the load
// generator, plus what /proc says about a process (RSS, CPU time).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { LoadConfig, LoadResult } from './loadgen.js';
import { freePort } from './postgres.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');
const BENCH_DIST = import.meta.dirname;
export const GUARD_NAMESPACE = 'airflow-downgrade-guard';
export const GUARD_USER = `system:serviceaccount:${GUARD_NAMESPACE}:airflow-downgrade-guard`;

export interface Tls {
  dir: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  caPem: string;
}

export interface ServeProcess {
  child: ChildProcess;
  port: number;
  url: string;
  logFile: string;
  stop(): Promise<void>;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = exited(child);
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(timer);
}

function get(url: string, ca: string): Promise<number> {
  return new Promise((resolve) => {
    const req = https.get(url, { ca, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

export async function waitUntil(what: string, probe: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface ServeOptions {
  tls: Tls;
  kubeconfig: string;
  logFile: string;
  extraArgs?: string[];
  /** Node flags for the serve process (e.g. --cpu-prof). */
  nodeFlags?: string[];
  logLevel?: string;
}

/** `airflow-downgrade-guard serve` as it runs in the cluster, ready once /readyz answers 200 (caches listed). */
export async function startServe(options: ServeOptions): Promise<ServeProcess> {
  const port = await freePort();
  const out = openSync(options.logFile, 'a');
  const child = spawn(
    process.execPath,
    [
      ...(options.nodeFlags ?? []),
      path.join(ROOT, 'dist/src/cli/main.js'),
      'serve',
      '--host', '127.0.0.1',
      '--port', String(port),
      '--tls-cert-file', options.tls.certFile,
      '--tls-key-file', options.tls.keyFile,
      '--kubeconfig', options.kubeconfig,
      '--identity', 'bench-guard',
      ...(options.extraArgs ?? []),
    ],
    { env: { ...process.env, POD_NAMESPACE: GUARD_NAMESPACE, ADG_LOG_LEVEL: options.logLevel ?? 'info' }, stdio: ['ignore', out, out] },
  );
  closeSync(out);
  const url = `https://127.0.0.1:${port}`;
  try {
    await waitUntil('serve ready', async () => {
      if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}: ${tail(options.logFile)}`);
      return (await get(`${url}/readyz`, options.tls.caPem)) === 200;
    }, 30_000, 100);
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return { child, port, url, logFile: options.logFile, stop: () => stopChild(child, 10_000) };
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-8).join('\n');
  } catch {
    return '';
  }
}

export interface FloorProcess {
  child: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

export async function startFloor(tls: Tls): Promise<FloorProcess> {
  const child = spawn(process.execPath, [path.join(BENCH_DIST, 'floor-server.js'), tls.certFile, tls.keyFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (c: Buffer) => {
      text += c.toString('utf8');
      const m = /listening (\d+)/.exec(text);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`floor server exited with ${code}`)));
  });
  return { child, url: `https://127.0.0.1:${port}`, stop: () => stopChild(child) };
}

/** Runs the load generator as its own process and returns what it measured. */
export async function runLoadgen(config: LoadConfig, dir: string, name: string): Promise<LoadResult> {
  const file = path.join(dir, `load-${name.replace(/[^a-z0-9]+/gi, '-')}.json`);
  writeFileSync(file, JSON.stringify(config));
  const child = spawn(process.execPath, [path.join(BENCH_DIST, 'loadgen.js'), file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`load generator failed (${code}): ${err.trim()}`);
  return JSON.parse(out) as LoadResult;
}

/** Resident set size of a process, from /proc (Linux). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** User + system CPU time of a process in milliseconds, from /proc (Linux). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the command name.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}
