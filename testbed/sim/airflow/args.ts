// Just enough of Python's argparse (as Airflow's CLI configures it) to parse the `airflow db …`
// commands the simulation runs: short/long options, `--opt=value`, `-nVALUE`, unique prefixes of
// long options, and argparse's wording for usage errors (exit code 2).

export interface OptionSpec {
  short?: string;
  long: string;
  /** Name in the parsed result, e.g. 'to_version'. */
  dest: string;
  /** Metavar when it takes a value (e.g. 'VERSION'); a flag otherwise. */
  metavar?: string;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export type ParsedOptions = Record<string, string | boolean | undefined>;

function label(spec: OptionSpec): string {
  return spec.short ? `${spec.short}/${spec.long}` : spec.long;
}

function findLong(specs: readonly OptionSpec[], name: string): OptionSpec {
  const exact = specs.find((s) => s.long === name);
  if (exact) return exact;
  const prefixed = specs.filter((s) => s.long.startsWith(name));
  if (prefixed.length === 1 && prefixed[0]) return prefixed[0];
  if (prefixed.length > 1) {
    throw new UsageError(`ambiguous option: ${name} could match ${prefixed.map((s) => s.long).join(', ')}`);
  }
  throw new UsageError(`unrecognized arguments: ${name}`);
}

/** Parses options only (the subcommand words are already consumed); positionals are refused. */
export function parseOptions(specs: readonly OptionSpec[], argv: readonly string[]): ParsedOptions {
  const result: ParsedOptions = {};
  const unrecognized: string[] = [];
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i] as string;
    let spec: OptionSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--') && arg.length > 2) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(0, eq) : arg;
      try {
        spec = findLong(specs, name);
      } catch (error) {
        if ((error as Error).message.startsWith('ambiguous')) throw error;
        unrecognized.push(arg);
        continue;
      }
      if (eq >= 0) inline = arg.slice(eq + 1);
    } else if (arg.startsWith('-') && arg.length > 1 && arg !== '-') {
      spec = specs.find((s) => s.short === arg.slice(0, 2));
      if (!spec) {
        unrecognized.push(arg);
        continue;
      }
      if (arg.length > 2) {
        if (spec.metavar) inline = arg.slice(2).replace(/^=/, '');
        else {
          // Bundled short flags, e.g. -ys.
          for (const flag of arg.slice(1)) {
            const bundled = specs.find((s) => s.short === `-${flag}` && !s.metavar);
            if (!bundled) throw new UsageError(`argument ${label(spec)}: ignored explicit argument '${arg.slice(2)}'`);
            result[bundled.dest] = true;
          }
          continue;
        }
      }
    } else {
      unrecognized.push(arg);
      continue;
    }
    if (!spec.metavar) {
      if (inline !== undefined) throw new UsageError(`argument ${label(spec)}: ignored explicit argument '${inline}'`);
      result[spec.dest] = true;
      continue;
    }
    if (inline === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('-') && next.length > 1)) {
        throw new UsageError(`argument ${label(spec)}: expected one argument`);
      }
      inline = next;
      i += 1;
    }
    result[spec.dest] = inline;
  }
  if (unrecognized.length > 0) throw new UsageError(`unrecognized arguments: ${unrecognized.join(' ')}`);
  return result;
}

/**
 * A container's `command`+`args` as the process argv. `bash -c "exec airflow …"` (how the
 * chart starts Airflow) is split into words; other shell syntax is refused rather than guessed.
 */
export function processArgv(command: readonly string[] | undefined, args: readonly string[] | undefined): string[] {
  const argv = withoutEntrypoint([...(command ?? []), ...(args ?? [])]);
  const shell = argv[0]?.split('/').pop();
  if ((shell === 'bash' || shell === 'sh') && argv[1] === '-c' && typeof argv[2] === 'string') {
    // bash -c SCRIPT $0 ARGS…: the chart's create-user job passes its options as "$@".
    const words = shellWords(argv[2], argv.slice(4));
    return withoutTimeout(words[0] === 'exec' ? words.slice(1) : words);
  }
  return argv;
}

const DUMB_INIT_FLAGS = new Set(['-c', '--single-child', '-v', '--verbose', '-V', '--version']);
/** The official image's entrypoint runs these as they are; anything else as `airflow ARGS`. */
const ENTRYPOINT_PASSTHROUGH = new Set(['bash', 'sh', 'python', 'python3', 'airflow']);

/**
 * The official image's `dumb-init -- /entrypoint ARGS` as what it finally runs: dumb-init runs its
 * command, and /entrypoint execs bash/python/airflow as given and any other word as an airflow
 * subcommand (`/entrypoint scheduler` is `airflow scheduler`).
 */
function withoutEntrypoint(argv: string[]): string[] {
  let rest = argv;
  if (rest[0]?.split('/').pop() === 'dumb-init') {
    rest = rest.slice(1);
    while (rest[0] !== undefined && DUMB_INIT_FLAGS.has(rest[0])) rest = rest.slice(1);
    if (rest[0] === '--') rest = rest.slice(1);
  }
  if (rest[0] === '/entrypoint' || rest[0] === '/usr/bin/entrypoint') {
    rest = rest.slice(1);
    const first = rest[0]?.split('/').pop();
    if (first !== undefined && !ENTRYPOINT_PASSTHROUGH.has(first)) rest = ['airflow', ...rest];
  }
  return rest;
}

/** `timeout 16s airflow db check` (the community chart's check-db) runs `airflow db check`. */
function withoutTimeout(words: string[]): string[] {
  return words[0] === 'timeout' && words[1] !== undefined && /^\d+[smhd]?$/.test(words[1]) ? words.slice(2) : words;
}

/** Words of a simple shell command line: quotes, backslash escapes, line continuations and "$@". */
export function shellWords(line: string, positional: readonly string[] = []): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i += 1) {
    const c = line[i] as string;
    if (c === '$' && line[i + 1] === '@' && quote !== "'") {
      if (word !== undefined && word !== '') words.push(word);
      words.push(...positional);
      word = undefined;
      i += 1;
    } else if (quote === "'") {
      if (c === "'") quote = undefined;
      else word = (word ?? '') + c;
    } else if (c === '\\') {
      const next = line[i + 1];
      i += 1;
      if (next === undefined || next === '\n') continue;
      word = (word ?? '') + next;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else word = (word ?? '') + c;
    } else if (c === '"' || c === "'") {
      quote = c;
      word = word ?? '';
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (';&|<>`$()'.includes(c)) {
      throw new UsageError(`unsupported shell syntax '${c}' in: ${line}`);
    } else {
      word = (word ?? '') + c;
    }
  }
  if (quote) throw new UsageError(`unterminated quote in: ${line}`);
  if (word !== undefined) words.push(word);
  return words;
}
