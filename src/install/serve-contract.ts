// What the Deployment hands to `airflow-downgrade-guard serve`, in one place so `serve`'s
// configuration loader and the install manifests can be kept in step (import these names there).
import { AUDIT_SECRET_KEY, CONTAINER_PORT, GUARD_NAME, TLS_SECRET_NAME, WEBHOOK_CONFIGURATION_NAME } from './names.js';

export const SERVE_ENV = {
  /** One of CERT_MODES. */
  certMode: 'ADG_CERT_MODE',
  tlsCertFile: 'ADG_TLS_CERT_FILE',
  tlsKeyFile: 'ADG_TLS_KEY_FILE',
  /** Self-managed mode: the Secret to create/reuse, in POD_NAMESPACE. */
  tlsSecretName: 'ADG_TLS_SECRET_NAME',
  /** Self-managed mode: the Service the certificate is for (SANs). */
  serviceName: 'ADG_SERVICE_NAME',
  /** Self-managed mode: where to inject caBundle. */
  webhookConfigurationName: 'ADG_WEBHOOK_CONFIGURATION_NAME',
  /** Comma-separated; empty = all namespaces (cluster-wide RBAC). */
  watchNamespaces: 'ADG_WATCH_NAMESPACES',
  /** From Secret airflow-downgrade-guard-audit key `url`; optional in the manifests, unset when the Secret is absent. */
  auditDatabaseUrl: 'ADG_AUDIT_DATABASE_URL',
  port: 'ADG_PORT',
  logLevel: 'ADG_LOG_LEVEL',
  podNamespace: 'POD_NAMESPACE',
  podName: 'POD_NAME',
} as const;

/**
 * How `serve` gets its serving certificate. files: the pair at ADG_TLS_CERT_FILE/ADG_TLS_KEY_FILE
 * (a Secret made with `certs generate`, mounted); cert-manager: the same files, issued and renewed
 * by cert-manager (at TLS_MOUNT_PATH unless set); self-managed: the guard keeps its certificate
 * Secret and the webhook's caBundle itself. Every mode serves a renewed pair without a restart.
 */
export const CERT_MODES = ['files', 'self-managed', 'cert-manager'] as const;
export type CertMode = (typeof CERT_MODES)[number];

export const TLS_MOUNT_PATH = '/etc/airflow-downgrade-guard/tls';

export interface GuardEnvironmentOptions {
  certMode: CertMode;
  watchNamespaces: string[];
  auditSecretName: string;
  logLevel: string;
}

type EnvVar = { name: string; value: string } | { name: string; valueFrom: Record<string, unknown> };

export function guardEnvironment(options: GuardEnvironmentOptions): EnvVar[] {
  const tls: EnvVar[] =
    options.certMode === 'files'
      ? [
          { name: SERVE_ENV.tlsCertFile, value: `${TLS_MOUNT_PATH}/tls.crt` },
          { name: SERVE_ENV.tlsKeyFile, value: `${TLS_MOUNT_PATH}/tls.key` },
        ]
      : [
          { name: SERVE_ENV.tlsSecretName, value: TLS_SECRET_NAME },
          { name: SERVE_ENV.serviceName, value: GUARD_NAME },
          { name: SERVE_ENV.webhookConfigurationName, value: WEBHOOK_CONFIGURATION_NAME },
        ];
  return [
    { name: SERVE_ENV.podNamespace, valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: SERVE_ENV.podName, valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: SERVE_ENV.port, value: String(CONTAINER_PORT) },
    { name: SERVE_ENV.logLevel, value: options.logLevel },
    { name: SERVE_ENV.certMode, value: options.certMode },
    ...tls,
    { name: SERVE_ENV.watchNamespaces, value: options.watchNamespaces.join(',') },
    {
      name: SERVE_ENV.auditDatabaseUrl,
      valueFrom: { secretKeyRef: { name: options.auditSecretName, key: AUDIT_SECRET_KEY, optional: true } },
    },
  ];
}
