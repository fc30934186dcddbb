// `abort OP`: end a downgrade operation before the schema may have changed (confirm, downgrade, or
// held there). Refused, with the reason, from verify on: then only finishing (or a retry after
// fixing the cause) leaves code running that matches the schema. Exit 0 done, 1 refused/failed.
import type { Command } from 'commander';
import { operatorCommand } from './retry.js';

export function register(program: Command): void {
  operatorCommand(
    program,
    'abort',
    'abort a downgrade operation that has not changed the schema yet',
    'Held workloads stay held until they are changed back to the version before the operation.',
  );
}
