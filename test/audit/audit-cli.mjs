// Subprocess harness for the `audit` command until src/cli/main.ts wires it: the built module
// registered on a program of the same name, run with this process's arguments.
import { Command } from 'commander';

const { register } = await import('../../dist/src/cli/commands/audit.js');
const program = new Command('airflow-downgrade-guard');
register(program);
await program.parseAsync(process.argv);
