#!/usr/bin/env node
// The `airflow-downgrade-guard` command line. Each subcommand lives in ./commands/<name>.ts and
// exports `register(program)`; adding one is adding its name to COMMANDS.
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const COMMANDS = [
  'review',
  'serve',
  'audit',
  'certs',
  'manifests',
  'plan',
  'status',
  'retry',
  'abort',
  'wait',
] as const;

/** Exit code for invalid input and usage errors, for every subcommand. */
export const USAGE_EXIT_CODE = 2;

interface CommandModule {
  register(program: Command): void;
}

function packageVersion(): string {
  // Works from src/cli (tests) and dist/src/cli (built): walk up to our package.json.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'airflow-downgrade-guard' && pkg.version) return pkg.version;
    } catch {
      // not here, one level up
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

/**
 * A command whose module fails to load reports that when it is invoked, so one broken command
 * does not take the others (and --help) down with it.
 */
async function registerCommand(program: Command, name: string): Promise<void> {
  let failure: string;
  try {
    const module = (await import(`./commands/${name}.js`)) as Partial<CommandModule>;
    if (typeof module.register === 'function') {
      module.register(program);
      return;
    }
    failure = 'its module does not export register(program)';
  } catch (error) {
    failure = (error as Error).message.split('\n')[0] ?? 'load error';
  }
  program
    .command(name)
    .description(`(unavailable: ${failure})`)
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      program.error(`error: command '${name}' is unavailable: ${failure}`, {
        exitCode: 1,
        code: 'adg.command-unavailable',
      });
    });
}

export async function buildProgram(): Promise<Command> {
  const program = new Command('airflow-downgrade-guard')
    .description(
      'Admission webhook and drain coordinator that makes Apache Airflow downgrades safe for Helm, kubectl and GitOps',
    )
    .version(packageVersion(), '-V, --version')
    .exitOverride();
  for (const name of COMMANDS) await registerCommand(program, name);
  for (const command of program.commands) command.exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander already printed the message; its own parse errors use 1, we use 2 for usage.
      return error.exitCode === 1 ? USAGE_EXIT_CODE : error.exitCode;
    }
    process.stderr.write(`airflow-downgrade-guard: ${(error as Error).message}\n`);
    return 1;
  }
}

const invokedDirectly =
  process.argv[1] !== undefined && /(main\.js|airflow-downgrade-guard(\.js)?)$/.test(process.argv[1]);
if (invokedDirectly) process.exitCode = await main(process.argv);
