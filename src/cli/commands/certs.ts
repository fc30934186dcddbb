import { isIP } from 'node:net';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { generateCertificates, SERVING_VALIDITY_DAYS } from '../../certs/generate.js';
import { writeCertificateFiles } from '../../certs/write.js';
import { UsageArgumentError } from './manifests.js';
import { DEFAULT_NAMESPACE, GUARD_NAME, TLS_SECRET_NAME, WEBHOOK_CONFIGURATION_NAME } from '../../install/names.js';

export interface CertsGenerateOptions {
  service: string;
  namespace: string;
  out: string;
  days: number;
  ip: string[];
  dns: string[];
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
  const certs = generateCertificates({
    service: options.service,
    namespace: options.namespace,
    validityDays: options.days,
    dnsNames: [...options.dns, ...options.ip],
  });
  const dir = resolve(options.out);
  const written = await writeCertificateFiles(dir, certs);
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
    .action(async (opts: CertsGenerateOptions, command: Command) => {
      try {
        process.stdout.write(await runCertsGenerate(opts));
      } catch (err) {
        command.error(`error: ${(err as Error).message}`, { exitCode: 2, code: 'adg.usage' });
      }
    });
}
