#!/usr/bin/env node
// The version check runs before the CLI loads: its dependencies (undici in @kubernetes/client-node)
// crash on older Node.js with errors that do not say why. This file and ./node-version.js must
// therefore stay plain JavaScript that any Node.js can parse.
import { nodeVersionProblem } from './node-version.js';

const problem = nodeVersionProblem(process.versions.node);
if (problem) {
  process.stderr.write(`${problem}\n`);
  process.exitCode = 2;
} else {
  await import('../dist/src/cli/main.js');
}
