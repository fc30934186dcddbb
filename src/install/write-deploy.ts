// Regenerates deploy/base and deploy/overlays from src/install/manifests.ts:
//   node dist/src/install/write-deploy.js [deploy-dir]
// Files it generated before and no longer generates are removed; deploy/README.md is kept.
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderDeployTree } from './deploy-tree.js';

const GENERATED_DIRS = ['base', 'overlays'];

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

export async function writeDeployTree(deployDir: string): Promise<string[]> {
  const tree = renderDeployTree();
  const wanted = new Set(Object.keys(tree).map((p) => join(deployDir, p)));
  for (const sub of GENERATED_DIRS) {
    for (const file of await listFiles(join(deployDir, sub))) {
      if (!wanted.has(file)) await rm(file);
    }
  }
  for (const [path, content] of Object.entries(tree)) {
    const file = join(deployDir, path);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, content);
  }
  return [...wanted].map((f) => relative(process.cwd(), f)).sort();
}

function defaultDeployDir(): string {
  // dist/src/install/write-deploy.js → <repo>/deploy
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../../deploy');
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2] !== undefined ? resolve(process.argv[2]) : defaultDeployDir();
  const written = await writeDeployTree(dir);
  for (const file of written) process.stdout.write(`wrote ${file}\n`);
}
