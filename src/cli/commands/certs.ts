import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import {
  generateCertificates,
  issueServingCertificate,
  SERVING_VALIDITY_DAYS,
  type GeneratedCertificates,
  type PemPair,
} from '../../certs/generate.js';
import { CERTIFICATE_FILES, writeCertificateFiles } from '../../certs/write.js';
import { UsageArgumentError } from './manifests.js';
import { DEFAULT_NAMESPACE, GUARD_NAME, TLS_SECRET_NAME, WEBHOOK_CONFIGURATION_NAME } from '../../install/names.js';

export interface CertsGenerateOptions {
  service: string;
  namespace: string;
  out: string;
  days: number;
  ip: string[];
  dns: string[];
  /** Overwrite existing files (a new CA breaks every caBundle that trusts the old one). */
  force?: boolean;
  /** Issue the serving certificate from this existing CA instead of a new one. */
  caCert?: string;
  caKey?: string;
}

export class CertsUsageError extends Error {}

/** The existing CA, checked: a CA certificate and the private key that belongs to it. */
async function readCa(certFile: string, keyFile: string): Promise<PemPair> {
  const read = async (file: string): Promise<string> => {
    try {
      return await readFile(file, 'utf8');
    } catch (error) {
      throw new CertsUsageError(
        `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
  };
  const [cert, key] = await Promise.all([read(certFile), read(keyFile)]);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new CertsUsageError(`${certFile} is not a PEM certificate`);
  }
  if (!x509.ca) throw new CertsUsageError(`${certFile} is not a CA certificate`);
  let matches = false;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(key));
  } catch {
    throw new CertsUsageError(`${keyFile} is not a PEM private key`);
  }
  if (!matches) throw new CertsUsageError(`${keyFile} is not the private key of ${certFile}`);
  return { cert, key };
}

function parseDays(value: string): number {
  const days = Number(value);
  if (!/^\d+$/.test(value) || !Number.isInteger(days) || days < 1 || days > 36500) {
    throw new UsageArgumentError('must be a whole number of days between 1 and 36500');
  }
  return days;
}

function collectIp(value: string, previous: string[]): string[] {
  if (isIP(value) === 0) throw new UsageArgumentError(`not an IP address: ${value}`);
  return [...previous, value];
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Generates and writes the files; returns the text to print. */
export async function runCertsGenerate(options: CertsGenerateOptions): Promise<string> {
  if ((options.caCert === undefined) !== (options.caKey === undefined))
    throw new CertsUsageError('--ca-cert and --ca-key go together');
  const dir = resolve(options.out);
  const request = {
    service: options.service,
    namespace: options.namespace,
    validityDays: options.days,
    dnsNames: [...options.dns, ...options.ip],
  };
  let certs: GeneratedCertificates;
  let files: readonly string[] = CERTIFICATE_FILES;
  if (options.caCert !== undefined && options.caKey !== undefined) {
    const ca = await readCa(options.caCert, options.caKey);
    const serving = issueServingCertificate({ ...request, ca });
    certs = { caCert: ca.cert, caKey: ca.key, cert: serving.cert, key: serving.key };
    // Renewal: the serving pair and a copy of the CA certificate; the CA key stays where it is.
    files = ['ca.crt', 'tls.crt', 'tls.key'];
    const caCopy = join(dir, 'ca.crt');
    if (existsSync(caCopy) && !options.force && (await readFile(caCopy, 'utf8')) !== ca.cert) {
      throw new CertsUsageError(
        `${caCopy} holds another CA than ${options.caCert}; refusing to replace it without --force`,
      );
    }
  } else {
    const existing = CERTIFICATE_FILES.filter((f) => existsSync(join(dir, f)));
    if (existing.length > 0 && !options.force) {
      throw new CertsUsageError(
        `${dir} already holds ${existing.join(', ')}; a new CA would break every caBundle that trusts the current one. ` +
          `To renew the serving certificate: --ca-cert ${join(dir, 'ca.crt')} --ca-key ${join(dir, 'ca.key')}; to replace everything: --force`,
      );
    }
    certs = generateCertificates(request);
  }
  const written = await writeCertificateFiles(dir, certs, files);
  const caBundle = Buffer.from(certs.caCert).toString('base64');
  return [
    ...written.map((f) => `wrote ${f.path} (mode ${f.mode.toString(8).padStart(4, '0')})`),
    '',
    `Serving certificate for ${options.service}.${options.namespace}.svc, valid ${options.days} days.`,
    'Create the Secret the guard reads (with --cert-mode files):',
    `  kubectl -n ${options.namespace} create secret generic ${TLS_SECRET_NAME} --type=kubernetes.io/tls \\`,
    `    --from-file=tls.crt=${dir}/tls.crt --from-file=tls.key=${dir}/tls.key --from-file=ca.crt=${dir}/ca.crt`,
    `Set caBundle on every webhook of the MutatingWebhookConfiguration ${WEBHOOK_CONFIGURATION_NAME}:`,
    `  caBundle: ${caBundle}`,
    'Keep ca.key offline; it is only needed to issue the next serving certificate.',
    '',
  ].join('\n');
}

export function register(program: Command): void {
  const certs = program.command('certs').description('certificates for the webhook server');
  certs
    .command('generate')
    .description('make a CA and a serving certificate for the webhook Service (manual installs, local runs)')
    .option('--service <name>', 'Service name', GUARD_NAME)
    .option('--namespace <ns>', 'namespace of the Service', DEFAULT_NAMESPACE)
    .requiredOption('--out <dir>', 'directory to write ca.crt, ca.key, tls.crt, tls.key into')
    .option('--days <n>', 'validity of the serving certificate in days', parseDays, SERVING_VALIDITY_DAYS)
    .option('--ip <address>', 'extra IP SAN, e.g. 127.0.0.1 (repeatable)', collectIp, [] as string[])
    .option('--dns <name>', 'extra DNS SAN, e.g. localhost (repeatable)', collect, [] as string[])
    .option('--ca-cert <file>', 'issue the serving certificate from this existing CA (renewal; with --ca-key)')
    .option('--ca-key <file>', "the existing CA's private key")
    .option('--force', 'overwrite existing files in --out, the CA included')
    .action(async (opts: CertsGenerateOptions, command: Command) => {
      try {
        process.stdout.write(await runCertsGenerate(opts));
      } catch (err) {
        command.error(`error: ${(err as Error).message}`, { exitCode: 2, code: 'adg.usage' });
      }
    });
}
