// vitest globalSetup: one PostgreSQL for the whole run. DATABASE_URL (an admin URL that may
// CREATE DATABASE) wins; otherwise an embedded server is started here and stopped at the end.
// Test files get the URL through inject('adminDatabaseUrl'), subprocesses through the env var.
import type { TestProject } from 'vitest/node';
import { ADMIN_URL_ENV, startEmbeddedPostgres } from './postgres.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.DATABASE_URL;
  if (external) {
    publish(project, external);
    return async () => {};
  }
  const server = await startEmbeddedPostgres();
  publish(project, server.url);
  return async () => {
    await server.destroy();
  };
}

function publish(project: TestProject, url: string): void {
  process.env[ADMIN_URL_ENV] = url;
  project.provide('adminDatabaseUrl', url);
}
