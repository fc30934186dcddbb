// `review`: answer a saved AdmissionReview offline, exactly as the webhook would with the given
// release state. Prints the AdmissionReview response JSON on stdout; exit 0 when a response was
// produced (allowed or denied), 2 with a one-line reason on stderr for invalid input.
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { AdmissionReviewError } from '../../core/admission.js';
import { ConfigError, parseGuardConfig, withUnknownVersionFlags, type GuardConfig } from '../../core/config.js';
import type { ReleaseState } from '../../core/decide.js';
import { isValidRevision } from '../../core/heads.js';
import { isJsonObject } from '../../core/objects.js';
import { reviewAdmission } from '../../core/review.js';
import { parseAirflowVersion } from '../../core/versions.js';
import { BODY_LIMIT_BYTES } from '../../webhook/admission-handler.js';

class InvalidInput extends Error {}

export interface ReviewOptions {
  file: string;
  releaseVersion?: string;
  dbRevision?: string;
  strict?: boolean;
  unknownVersion?: string;
  config?: string;
  pretty?: boolean;
  explain?: boolean;
}

async function readInput(file: string): Promise<string> {
  try {
    if (file !== '-') return await readFile(file, 'utf8');
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  } catch (error) {
    throw new InvalidInput(
      `cannot read ${file === '-' ? 'stdin' : file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InvalidInput(`${what} is not valid JSON: ${(error as Error).message.split('\n')[0]}`);
  }
}

/**
 * The AdmissionReview in the input: the review itself, a record that keeps it under
 * `admissionReview` (the webhook's DecisionRecord does), or an admission record of
 * `audit --output json`, which keeps the review's `request`; so a decision from the audit log can
 * be replayed with `review --file record.json`.
 */
export function admissionReviewOf(input: unknown): unknown {
  if (!isJsonObject(input)) return input;
  if (input.request === undefined && isJsonObject(input.admissionReview)) return input.admissionReview;
  if (input.kind === 'admission' && isJsonObject(input.request)) {
    return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: input.request };
  }
  return input;
}

export function releaseStateFromOptions(options: Pick<ReviewOptions, 'releaseVersion' | 'dbRevision'>): ReleaseState {
  const state: ReleaseState = {};
  if (options.releaseVersion !== undefined) {
    if (!parseAirflowVersion(options.releaseVersion)) {
      throw new InvalidInput(
        `--release-version ${JSON.stringify(options.releaseVersion.slice(0, 40))} is not an Airflow version (like 3.1.0)`,
      );
    }
    state.runningVersion = options.releaseVersion;
  }
  if (options.dbRevision !== undefined) {
    if (!isValidRevision(options.dbRevision)) {
      throw new InvalidInput(
        `--db-revision ${JSON.stringify(String(options.dbRevision).slice(0, 40))} is not an alembic revision (like cc92b33c6709)`,
      );
    }
    state.dbRevision = options.dbRevision;
  }
  return state;
}

async function loadConfig(options: ReviewOptions): Promise<GuardConfig> {
  let raw: unknown = {};
  if (options.config !== undefined) {
    let text: string;
    try {
      text = await readFile(options.config, 'utf8');
    } catch (error) {
      throw new InvalidInput(
        `cannot read config ${options.config}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
    try {
      raw = parseYaml(text) ?? {};
    } catch (error) {
      throw new InvalidInput(
        `config ${options.config} is not valid YAML/JSON: ${(error as Error).message.split('\n')[0]}`,
      );
    }
  }
  const config = parseGuardConfig(raw);
  return withUnknownVersionFlags(config, options);
}

export async function runReview(options: ReviewOptions): Promise<{ stdout: string; stderr?: string }> {
  const state = releaseStateFromOptions(options);
  const config = await loadConfig(options);
  const text = await readInput(options.file);
  const parsed = parseJson(text, options.file === '-' ? 'stdin' : options.file);
  const input = admissionReviewOf(parsed);
  // The webhook's answer includes its limits: it refuses a body over BODY_LIMIT_BYTES with 413.
  const bytes = input === parsed ? Buffer.byteLength(text, 'utf8') : Buffer.byteLength(JSON.stringify(input), 'utf8');
  if (bytes > BODY_LIMIT_BYTES) {
    throw new InvalidInput(
      `the AdmissionReview is ${bytes} bytes: the webhook refuses requests over its ${BODY_LIMIT_BYTES} byte (3 MiB) limit with 413 Payload Too Large, and the API server then applies the webhook's failurePolicy`,
    );
  }
  const { response, decision } = reviewAdmission(input, () => state, config);
  const stdout = `${options.pretty ? JSON.stringify(response, null, 2) : JSON.stringify(response)}\n`;
  return options.explain ? { stdout, stderr: `${JSON.stringify(decision, null, 2)}\n` } : { stdout };
}

export function register(program: Command): void {
  program
    .command('review')
    .description('answer a saved AdmissionReview (or an audit record holding one) exactly as the webhook would')
    .requiredOption('-f, --file <path>', "AdmissionReview JSON file, or '-' for stdin")
    .option('--release-version <version>', 'the Airflow version the release runs now (for CREATE requests)')
    .option('--db-revision <revision>', "the metadata database's alembic revision")
    .option(
      '--unknown-version <policy>',
      'a change whose Airflow version cannot be told: hold (default: held until the guard resolves it) | allow (with a warning) | deny',
    )
    .option('--strict', 'deprecated alias of --unknown-version deny')
    .option('--config <file>', 'guard configuration (YAML or JSON)')
    .option('--pretty', 'indent the JSON (the webhook sends it compact)')
    .option('--explain', 'also print the full decision (reason, plan, hold) as JSON on stderr')
    .addHelpText('after', '\nExit codes: 0 a response was produced (allowed or denied), 2 invalid input.')
    .action(async (options: ReviewOptions, command: Command) => {
      try {
        const { stdout, stderr } = await runReview(options);
        process.stdout.write(stdout);
        if (stderr) process.stderr.write(stderr);
      } catch (error) {
        if (error instanceof InvalidInput || error instanceof AdmissionReviewError || error instanceof ConfigError) {
          command.error(`error: ${error.message}`, { exitCode: 2, code: 'adg.invalid-input' });
        }
        throw error;
      }
    });
}
