// Names shared by the install manifests, the certificate code and `serve`.
export const GUARD_NAME = 'airflow-downgrade-guard';
export const DEFAULT_NAMESPACE = 'airflow-downgrade-guard';
/** Prefix of every annotation and label the guard reads or writes. */
export const LABEL_PREFIX = 'airflow-downgrade-guard/';
/** Opt-in label for workloads no known chart convention marks as Airflow ("true"), and opt-out ("false"). */
export const ENABLED_LABEL = `${LABEL_PREFIX}enabled`;
export const TLS_SECRET_NAME = 'airflow-downgrade-guard-tls';
export const AUDIT_SECRET_NAME = 'airflow-downgrade-guard-audit';
export const AUDIT_SECRET_KEY = 'url';
export const WEBHOOK_CONFIGURATION_NAME = 'airflow-downgrade-guard';
/** Suffix of the webhook entries' names: a webhook name must be a DNS name of at least three labels. */
export const WEBHOOK_NAME_SUFFIX = 'airflow-downgrade-guard.io';
export const WEBHOOK_PATH = '/mutate';
export const CONTAINER_PORT = 8443;
export const SERVICE_PORT = 443;
/** Keep in step with package.json (a test checks). */
export const GUARD_VERSION = '0.1.0';
/** The name `docker build -t airflow-downgrade-guard:0.1.0 .` gives: no image is published, so the default claims none. */
export const DEFAULT_IMAGE = `airflow-downgrade-guard:${GUARD_VERSION}`;
/** Numeric so runAsNonRoot can be verified by the kubelet without a passwd entry. */
export const RUN_AS_USER = 10001;
