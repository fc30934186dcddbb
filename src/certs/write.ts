import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { GeneratedCertificates } from './generate.js';

export interface WrittenFile {
  path: string;
  mode: number;
}

export const CERTIFICATE_FILES = ['ca.crt', 'ca.key', 'tls.crt', 'tls.key'] as const;

/** Writes ca.crt, ca.key, tls.crt, tls.key (or the ones named) into dir; private keys get mode 0600. */
export async function writeCertificateFiles(
  dir: string,
  certs: GeneratedCertificates,
  only: readonly string[] = CERTIFICATE_FILES,
): Promise<WrittenFile[]> {
  await mkdir(dir, { recursive: true });
  const files: Array<[string, string, number]> = [
    ['ca.crt', certs.caCert, 0o644],
    ['ca.key', certs.caKey, 0o600],
    ['tls.crt', certs.cert, 0o644],
    ['tls.key', certs.key, 0o600],
  ];
  const written: WrittenFile[] = [];
  for (const [name, content, mode] of files.filter(([name]) => only.includes(name))) {
    const path = join(dir, name);
    await writeFile(path, content, { mode });
    await chmod(path, mode); // writeFile's mode only applies to new files
    written.push({ path, mode });
  }
  return written;
}
