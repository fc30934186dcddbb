// The simulated API server's protobuf converter (testbed/sim/protobuf, a Go module built on k8s.io/api),
// built once into the goBuild cache. The vitest global setup hands its path to workers and
// subprocesses through SIM_PROTOBUF_ENV.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { goBuild } from '../go-build.js';

export const SIM_PROTOBUF_ENV = 'ADG_TEST_SIM_PROTOBUF';

/** testbed/sim/protobuf of the repository, found upwards from here (this file also runs compiled, from dist-testbed/). */
function moduleDir(): string {
  for (let dir = import.meta.dirname; dir !== dirname(dir); dir = dirname(dir)) {
    const candidate = join(dir, 'testbed', 'sim', 'protobuf');
    if (existsSync(join(candidate, 'go.mod'))) return candidate;
  }
  throw new Error(`testbed/sim/protobuf/go.mod not found above ${import.meta.dirname}`);
}

const MODULE_DIR = moduleDir();

export async function buildSimProtobufConverter(log?: (line: string) => void): Promise<string> {
  const paths = await goBuild({
    moduleDir: MODULE_DIR,
    outputs: [{ name: 'sim-protobuf-json', pkg: '.' }],
    ...(log ? { log } : {}),
  });
  return paths['sim-protobuf-json']!;
}

/** The converter built by the global setup (tests run under it). */
export function simProtobufConverter(): string {
  const path = process.env[SIM_PROTOBUF_ENV];
  if (!path)
    throw new Error(
      `${SIM_PROTOBUF_ENV} is not set: run the tests through vitest (test/support/global-setup.ts builds ${join(MODULE_DIR, 'main.go')})`,
    );
  return path;
}
