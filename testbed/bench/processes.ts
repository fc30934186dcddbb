// The separate processes of a benchmark run: the real `serve`, the floor server and the load
// generator, plus what /proc says about a process (RSS, CPU time).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { LoadConfig, LoadResult } from './loadgen.js';
import { freePort } from './postgres.js';
import { guardEnv, serveArgv, type GuardTls } from '../start.js';

const BENCH_DIST = import.meta.dirname;

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

export async function waitUntil(
  what: string,
  probe: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface ServeOptions {
  tls: GuardTls;
  kubeconfig: string;
  logFile: string;
  extraArgs?: string[];
  /** Node flags for the serve process (e.g. --cpu-prof). */
  nodeFlags?: string[];
}

/** `airflow-downgrade-guard serve` as it runs in the cluster, ready once /readyz answers 200 (caches listed). */
export async function startServe(options: ServeOptions): Promise<ServeProcess> {
  const port = await freePort();
  const out = openSync(options.logFile, 'a');
  const child = spawn(
    process.execPath,
    serveArgv({
      port,
      identity: 'bench-guard',
      kubeconfig: options.kubeconfig,
      tls: options.tls,
      ...(options.extraArgs ? { args: options.extraArgs } : {}),
      ...(options.nodeFlags ? { nodeFlags: options.nodeFlags } : {}),
    }),
    // The log goes to a file, not through a pipe to this process: the guard never waits on the bench.
    { env: guardEnv(), stdio: ['ignore', out, out] },
  );
  closeSync(out);
  const url = `https://127.0.0.1:${port}`;
  try {
    await waitUntil(
      'serve ready',
      async () => {
        if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}: ${tail(options.logFile)}`);
        return (await get(`${url}/readyz`, options.tls.caPem)) === 200;
      },
      30_000,
      100,
    );
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

export async function startFloor(tls: GuardTls): Promise<FloorProcess> {
  const child = spawn(process.execPath, [path.join(BENCH_DIST, 'floor-server.js'), tls.certFile, tls.keyFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
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

export interface PreparedLoad {
  pid: number;
  /** Starts the prepared run and returns what it measured. */
  run(): Promise<LoadResult>;
  /** Starts the prepared run; `stop` ends it (or it ends at its duration) and returns what it measured. */
  start(): { stop(): Promise<LoadResult> };
  cancel(): void;
}

/**
 * Starts a load generator process that waits for the word to go: its priority is the one this
 * process has now, whatever this process lowers its own to afterwards.
 */
export async function prepareLoadgen(config: LoadConfig, dir: string, name: string): Promise<PreparedLoad> {
  const file = path.join(dir, `load-${name.replace(/[^a-z0-9]+/gi, '-')}.json`);
  writeFileSync(file, JSON.stringify(config));
  const child = spawn(process.execPath, [path.join(BENCH_DIST, 'loadgen.js'), file, '--wait'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer) => {
      out += c.toString('utf8');
      if (!out.includes('ready\n')) return;
      out = out.slice(out.indexOf('ready\n') + 'ready\n'.length);
      child.stdout!.off('data', onData);
      resolve();
    };
    child.stdout!.on('data', onData);
    void exit.then((code) =>
      reject(new Error(`load generator ${name} exited (${code}) before it was ready: ${err.trim()}`)),
    );
  });
  child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const result = async (): Promise<LoadResult> => {
    const code = await exit;
    if (code !== 0) throw new Error(`load generator ${name} failed (${code}): ${err.trim()}`);
    return JSON.parse(out) as LoadResult;
  };
  return {
    pid: child.pid!,
    run() {
      child.stdin!.write('go\n');
      return result();
    },
    start() {
      child.stdin!.write('go\n');
      return {
        stop() {
          if (child.exitCode === null && child.stdin!.writable) child.stdin!.write('stop\n');
          return result();
        },
      };
    },
    cancel() {
      child.kill('SIGKILL');
    },
  };
}

/** Runs the load generator as its own process and returns what it measured. */
export async function runLoadgen(config: LoadConfig, dir: string, name: string): Promise<LoadResult> {
  return (await prepareLoadgen(config, dir, name)).run();
}

/**
 * The fields of a /proc stat file (Linux) after the command name, which may hold spaces and
 * parentheses: index 0 is field 3 of proc(5) (state), so field N is at N - 3.
 */
function statFields(file: string): string[] {
  const stat = readFileSync(file, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** The nice value of a process (Linux): field 19 of its stat. */
export function niceOf(pid: number): number {
  return Number(statFields(`/proc/${pid}/stat`)[16]);
}

/** The nice value of a process's thread by its name (Linux names Node's main thread "MainThread", a worker after its `name`). */
export function threadNiceOf(pid: number, name: string): number | undefined {
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      if (readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim() !== name) continue;
      return Number(statFields(`/proc/${pid}/task/${tid}/stat`)[16]);
    } catch {
      // the thread ended while we looked
    }
  }
  return undefined;
}

/** The process and every process under it (Linux: from the parent ids in /proc). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(statFields(`/proc/${entry}/stat`)[1]); // field 4
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // the process ended while we looked
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const child of children.get(pid) ?? []) walk(child);
  };
  walk(root);
  return out;
}

/** Resident set size of a process, from /proc (Linux). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** User + system CPU time of a process in milliseconds, from /proc (Linux). */
export function cpuMs(pid: number): number {
  const fields = statFields(`/proc/${pid}/stat`);
  // utime and stime are fields 14 and 15 of stat.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}
