import { readFile } from 'node:fs/promises';
import type { Server as TlsServer } from 'node:tls';

/**
 * Swap the certificate of a running TLS/HTTPS server. New handshakes use it; connections already
 * open (keep-alive) keep their session, so no request is dropped.
 */
export function applyServingCertificate(server: TlsServer, pair: { cert: string; key: string }): void {
  server.setSecureContext({ cert: pair.cert, key: pair.key });
}

/**
 * Files mode (certificates mounted from a Secret, e.g. by cert-manager): poll the files and call
 * onChange when their content changes. Polling, because kubelet updates mounted Secrets by swapping
 * a symlink, which fs.watch does not report reliably. A half-written pair (cert and key that do
 * not belong together) is left to onChange to reject; it is re-read on the next tick.
 */
export function watchCertificateFiles(
  files: { certFile: string; keyFile: string },
  onChange: (pair: { cert: string; key: string }) => void,
  options: { intervalMs?: number; onError?: (err: unknown) => void } = {},
): { stop(): void; check(): Promise<void> } {
  let last = '';
  const check = async (): Promise<void> => {
    const [cert, key] = await Promise.all([readFile(files.certFile, 'utf8'), readFile(files.keyFile, 'utf8')]);
    const fingerprint = `${cert}\u0000${key}`;
    if (fingerprint === last) return;
    last = fingerprint;
    onChange({ cert, key });
  };
  const timer = setInterval(() => {
    check().catch((err: unknown) => options.onError?.(err));
  }, options.intervalMs ?? 30_000);
  timer.unref();
  return { stop: () => clearInterval(timer), check };
}
