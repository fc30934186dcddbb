// vitest globalSetup of `npm run test:cluster`: builds the control plane once, before any test file,
// so a cold build (minutes on two cores) shows its progress here instead of inside a test hook; then
// the common setup (pinned kubectl/Helm, Postgres, the leftover check).
import type { TestProject } from 'vitest/node';
import common from '../support/global-setup.js';
import { buildControlPlane } from './components.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  await buildControlPlane((line) => process.stderr.write(`[control plane build] ${line}\n`));
  process.stderr.write(`[control plane build] ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  return common(project);
}
