// Where `serve`'s serving certificate comes from. Every certificate mode is a source: it hands out
// the pair at start and each renewed pair after, and `serve` applies both the same way (the HTTPS
// server's setSecureContext), so a renewal is served without a restart whichever the mode.
import { readFile } from 'node:fs/promises';
import {
  startCertificateManager,
  type CertificateCluster,
  type CertificateManager,
  type SelfManagedOptions,
} from './self-managed.js';

export interface ServingPair {
  cert: string;
  key: string;
}

export interface CertificateSource {
  /** What the pair is read from, for logs. */
  readonly origin: string;
  /** The current pair; every renewed pair after it goes to onRenewal, until stop(). Rejects when there is no usable pair. */
  start(onRenewal: (pair: ServingPair) => void): Promise<ServingPair>;
  stop(): void;
}

export interface SourceOptions {
  /** How often to look for a renewed pair. */
  intervalMs: number;
  /** A failed look; the current pair stays served and the next interval tries again. */
  onError: (error: unknown) => void;
}

/**
 * `files` and `cert-manager` modes: the pair mounted from a Secret, re-read every interval and handed
 * on when its content changed. Polling, because the kubelet renews a mounted Secret by swapping a
 * symlink, which fs.watch does not report reliably. A half-written pair (cert and key that do not
 * belong together) is rejected where it is applied; the next change of either file is re-read.
 */
export function fileCertificateSource(
  files: { certFile: string; keyFile: string },
  options: SourceOptions,
): CertificateSource {
  let timer: NodeJS.Timeout | undefined;
  const read = async (): Promise<ServingPair> => {
    const [cert, key] = await Promise.all([readFile(files.certFile, 'utf8'), readFile(files.keyFile, 'utf8')]);
    return { cert, key };
  };
  return {
    origin: `files ${files.certFile} and ${files.keyFile}`,
    async start(onRenewal) {
      let current: ServingPair;
      try {
        current = await read();
      } catch (error) {
        throw new Error(`cannot read the serving certificate: ${(error as Error).message}`);
      }
      let checking = false;
      timer = setInterval(() => {
        if (checking) return;
        checking = true;
        read()
          .then((next) => {
            if (next.cert === current.cert && next.key === current.key) return;
            current = next;
            onRenewal(next);
          })
          .catch(options.onError)
          .finally(() => {
            checking = false;
          });
      }, options.intervalMs);
      timer.unref();
      return current;
    },
    stop() {
      clearInterval(timer);
    },
  };
}

/**
 * `self-managed` mode: the guard keeps the pair in a Secret (created, renewed before it expires,
 * its CA injected into the webhook configuration — self-managed.ts), checked every interval; a pair
 * another replica renewed is handed on as well.
 */
export function selfManagedCertificateSource(
  cluster: CertificateCluster,
  settings: SelfManagedOptions,
  options: SourceOptions,
): CertificateSource {
  let manager: CertificateManager | undefined;
  return {
    origin: `Secret ${settings.namespace}/${settings.secretName}`,
    async start(onRenewal) {
      // The manager hands over its first pair before it returns: that one is returned, not renewed.
      let started = false;
      manager = await startCertificateManager(cluster, {
        ...settings,
        intervalMs: options.intervalMs,
        onChange: (certs) => {
          if (started) onRenewal(servingPair(certs));
        },
        onError: options.onError,
      });
      started = true;
      return servingPair(manager.current());
    },
    stop() {
      manager?.stop();
    },
  };
}

function servingPair(certs: ServingPair): ServingPair {
  return { cert: certs.cert, key: certs.key };
}
