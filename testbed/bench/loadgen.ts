// Load generator, run as its own process: POSTs one AdmissionReview body over HTTPS with keep-alive
// from a fixed number of concurrent workers, for a fixed duration (bounded by a request cap), and
// prints one JSON line with the latencies it saw. Optional pacing turns it into a latency probe.
//
//   node dist-testbed/testbed/bench/loadgen.js <config.json> [--wait]
//
// With --wait it prints "ready", starts on the line "go" on stdin and ends early on the line "stop":
// a probe can be started ahead of time (before the benchmark lowers its own priority), run later, and
// last exactly as long as what it measures.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { summarise, type LatencySummary } from './stats.js';

export interface LoadConfig {
  url: string;
  caFile: string;
  bodyFile: string;
  concurrency: number;
  durationMs: number;
  warmupMs: number;
  /** Hard cap on measured requests. */
  maxRequests: number;
  /** When set, each worker sends at most this many requests per second (a probe, not a stress test). */
  ratePerWorker?: number;
  /** Return every measured latency too (to merge several runs before taking percentiles). */
  keepSamples?: boolean;
}

export interface LoadResult {
  requests: number;
  errors: number;
  firstError?: string;
  elapsedMs: number;
  requestsPerSec: number;
  latencyMs: LatencySummary;
  /** The first response body, for checking what was decided. */
  sample: string;
  /** Every measured latency, with keepSamples. */
  samplesMs?: number[];
}

function post(
  agent: https.Agent,
  url: URL,
  ca: string,
  body: Buffer,
  keepBody: boolean,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        agent,
        hostname: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        ca,
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          if (keepBody) chunks.push(c);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: keepBody ? Buffer.concat(chunks).toString('utf8') : '' }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Set by "stop" on stdin (--wait): the run ends now instead of at its duration. */
const control = { stopAt: Number.POSITIVE_INFINITY };

export async function runLoad(config: LoadConfig): Promise<LoadResult> {
  const url = new URL(config.url);
  const ca = readFileSync(config.caFile, 'utf8');
  const body = readFileSync(config.bodyFile);
  const agent = new https.Agent({ keepAlive: true, maxSockets: config.concurrency });
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let sample = '';
  const start = performance.now();
  const measureFrom = start + config.warmupMs;
  const plannedEnd = measureFrom + config.durationMs;
  const endOf = (): number => Math.min(plannedEnd, control.stopAt);
  const interval = config.ratePerWorker ? 1000 / config.ratePerWorker : 0;

  const worker = async (index: number): Promise<void> => {
    let next = performance.now() + (interval * index) / config.concurrency;
    while (performance.now() < endOf() && latencies.length < config.maxRequests) {
      if (interval) {
        const wait = next - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        next += interval;
      }
      const began = performance.now();
      try {
        const res = await post(agent, url, ca, body, sample === '');
        const took = performance.now() - began;
        if (res.status !== 200) {
          errors++;
          firstError ??= `HTTP ${res.status}`;
        } else if (began >= measureFrom) latencies.push(took);
        if (sample === '' && res.text) sample = res.text.slice(0, 4000);
      } catch (error) {
        errors++;
        firstError ??= (error as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: config.concurrency }, (_, i) => worker(i)));
  const elapsedMs = Math.min(performance.now(), endOf()) - measureFrom;
  agent.destroy();
  const result: LoadResult = {
    requests: latencies.length,
    errors,
    elapsedMs,
    requestsPerSec: (latencies.length / elapsedMs) * 1000,
    latencyMs: summarise(latencies),
    sample,
  };
  if (firstError) result.firstError = firstError;
  if (config.keepSamples) result.samplesMs = latencies;
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: loadgen <config.json>\n');
    process.exit(2);
  }
  const config = JSON.parse(readFileSync(file, 'utf8')) as LoadConfig;
  const started = process.argv.includes('--wait')
    ? new Promise<void>((resolve) => {
        let input = '';
        process.stdin.on('data', (chunk: Buffer) => {
          input += chunk.toString('utf8');
          if (input.includes('go\n')) resolve();
          if (input.includes('stop\n')) {
            control.stopAt = performance.now();
            process.stdin.destroy(); // an open stdin would keep this process from exiting
          }
        });
        process.stdout.write('ready\n');
      })
    : Promise.resolve();
  started
    .then(() => runLoad(config))
    .then(
      (result) => {
        process.stdin.destroy(); // ended at its duration: nothing more to wait for
        process.stdout.write(`${JSON.stringify(result)}\n`);
      },
      (error: unknown) => {
        process.stderr.write(`loadgen failed: ${(error as Error).stack ?? String(error)}\n`);
        process.exit(1);
      },
    );
}
