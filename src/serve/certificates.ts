// The certificate source of `serve` for its configured mode (CERT_MODES): the mounted files in
// files and cert-manager modes, the self-managed Secret otherwise. Both go through the same reload
// in guard.ts.
import type { CertificateCluster } from '../certs/self-managed.js';
import { fileCertificateSource, selfManagedCertificateSource, type CertificateSource } from '../certs/source.js';
import type { Cluster } from '../k8s/cluster.js';
import type { Logger } from '../log/logger.js';
import type { ServeConfig } from './config.js';

const FILES_CHECK_MS = 30_000;
const SECRET_CHECK_MS = 15 * 60_000;

export function certificateSource(config: ServeConfig, cluster: Cluster, logger: Logger): CertificateSource {
  const onError = (error: unknown): void =>
    logger.error(
      { err: (error as Error).message },
      'looking for a renewed serving certificate failed; keeping the current one',
    );
  if (config.certMode === 'self-managed') {
    return selfManagedCertificateSource(
      certificateCluster(cluster),
      {
        namespace: config.podNamespace,
        secretName: config.tlsSecretName,
        service: config.serviceName,
        webhookConfigurationName: config.webhookConfigurationName,
        ...(config.certExtraNames.length ? { extraNames: config.certExtraNames } : {}),
      },
      { intervalMs: config.certificateCheckMs ?? SECRET_CHECK_MS, onError },
    );
  }
  // loadServeConfig makes sure files and cert-manager modes have both files.
  return fileCertificateSource(
    { certFile: config.tlsCertFile!, keyFile: config.tlsKeyFile! },
    { intervalMs: config.certificateCheckMs ?? FILES_CHECK_MS, onError },
  );
}

function certificateCluster(cluster: Cluster): CertificateCluster {
  return {
    getSecret: async (ns, name) => (await cluster.find('Secret', ns, name)) ?? null,
    createSecret: (ns, secret) => cluster.create('Secret', ns, secret as unknown as Record<string, unknown>),
    replaceSecret: (ns, name, secret) =>
      cluster.replace('Secret', ns, name, secret as unknown as Record<string, unknown>),
    getWebhookConfiguration: async (name) =>
      (await cluster.find('MutatingWebhookConfiguration', undefined, name)) ?? null,
    patchWebhookConfiguration: async (name, patch) => {
      await cluster.patch('MutatingWebhookConfiguration', undefined, name, patch as never);
    },
  } as CertificateCluster;
}
