// The real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver (Node + RBAC authorization,
// the default admission plugins plus NodeRestriction, service-account token issuing and signing),
// kube-controller-manager and kube-scheduler, each a child process with its own certificate, in one
// temporary directory that stop() removes. Ports come from the kernel (freePort).
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../testbed/embedded-postgres.js';
import {
  createCertificateAuthority,
  issueClientCertificate,
  issueServerCertificate,
  type CertificateAuthority,
} from '../../testbed/sim/apiserver/tls.js';
import type { ControlPlaneBinaries } from './components.js';

export interface ControlPlaneOptions {
  binaries: ControlPlaneBinaries;
  /** Progress lines and the components' own output (prefixed with their name) when `verbose`. */
  log?: (line: string) => void;
  verbose?: boolean;
}

export interface Credentials {
  certPem: string;
  keyPem: string;
}

export interface ControlPlane {
  dir: string;
  /** https://127.0.0.1:<port> */
  server: string;
  ca: CertificateAuthority;
  /** An admin kubeconfig (system:masters). */
  adminKubeconfig: string;
  /** A kubeconfig for a client certificate (e.g. a node: system:node:<name> in system:nodes). */
  kubeconfigFor(user: { commonName: string; organizations?: string[] }): string;
  kubeconfigWithToken(token: string, user?: string): string;
  /** A serving certificate signed by the cluster CA (kube-apiserver trusts it as a kubelet's: --kubelet-certificate-authority). */
  servingCertificate(ipAddresses: string[]): Credentials;
  processes: Array<{ name: string; child: ChildProcess }>;
  stop(): Promise<void>;
}

const SERVICE_CIDR = '10.96.0.0/16';
const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

export function kubeconfig(server: string, caPem: string, user: Record<string, string>, name = 'admin'): string {
  // JSON is YAML: kubectl and @kubernetes/client-node both read it.
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: 'real', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } },
      ],
      users: [{ name, user }],
      contexts: [{ name: 'real', context: { cluster: 'real', user: name } }],
      'current-context': 'real',
    },
    null,
    2,
  );
}

function clientUser(credentials: Credentials): Record<string, string> {
  return {
    'client-certificate-data': Buffer.from(credentials.certPem).toString('base64'),
    'client-key-data': Buffer.from(credentials.keyPem).toString('base64'),
  };
}

export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const log = options.log ?? (() => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'adg-cluster-'));
  const processes: Array<{ name: string; child: ChildProcess }> = [];
  const exits = new Map<string, Promise<void>>();
  let stopping = false;
  const file = (name: string, content: string): string => {
    const path = join(dir, name);
    writeFileSync(path, content, { mode: 0o600 });
    return path;
  };
  const stop = async (): Promise<void> => {
    stopping = true;
    // Reverse start order: the API server outlives its clients, etcd outlives the API server.
    for (const { child, name } of [...processes].reverse()) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exits.get(name);
        clearTimeout(killer);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const run = (name: string, binary: string, args: string[]): ChildProcess => {
    const child = spawn(binary, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const collect = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        tail.push(line);
        if (tail.length > 40) tail.shift();
        if (options.verbose) log(`[${name}] ${line}`);
      }
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    exits.set(
      name,
      new Promise((resolve) =>
        child.once('exit', (code, signal) => {
          if (!stopping) log(`${name} exited (${signal ?? code}) unexpectedly; its last lines:\n${tail.join('\n')}`);
          resolve();
        }),
      ),
    );
    processes.push({ name, child });
    return child;
  };

  try {
    const started = Date.now();
    const ca = createCertificateAuthority('adg-real-cluster-ca');
    const caFile = file('ca.crt', ca.certPem);
    const clientFiles = (name: string, user: { commonName: string; organizations?: string[] }) => {
      const c = issueClientCertificate(ca, user);
      return { cert: file(`${name}.crt`, c.certPem), key: file(`${name}.key`, c.keyPem), credentials: c };
    };
    const [etcdClientPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const server = `https://127.0.0.1:${apiPort}`;

    const serving = issueServerCertificate(ca, {
      commonName: 'kube-apiserver',
      dnsNames: [
        'localhost',
        'kubernetes',
        'kubernetes.default',
        'kubernetes.default.svc',
        'kubernetes.default.svc.cluster.local',
      ],
      ipAddresses: ['127.0.0.1', '10.96.0.1'],
    });
    const servingCert = file('apiserver.crt', serving.certPem);
    const servingKey = file('apiserver.key', serving.keyPem);
    const { privateKey, publicKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    const saKey = file('sa.key', privateKey);
    const saPub = file('sa.pub', publicKey);
    const kubeletClient = clientFiles('apiserver-kubelet-client', {
      commonName: 'kube-apiserver-kubelet-client',
      organizations: ['system:masters'],
    });
    const admin = clientFiles('admin', { commonName: 'kubernetes-admin', organizations: ['system:masters'] });
    const adminKubeconfig = kubeconfig(server, ca.certPem, clientUser(admin.credentials));
    const componentKubeconfig = (name: string, commonName: string): string =>
      file(
        `${name}.kubeconfig`,
        kubeconfig(server, ca.certPem, clientUser(issueClientCertificate(ca, { commonName })), name),
      );

    run('etcd', options.binaries.etcd, [
      '--name',
      'default',
      '--data-dir',
      join(dir, 'etcd'),
      '--listen-client-urls',
      `http://127.0.0.1:${etcdClientPort}`,
      '--advertise-client-urls',
      `http://127.0.0.1:${etcdClientPort}`,
      '--listen-peer-urls',
      `http://127.0.0.1:${etcdPeerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${etcdPeerPort}`,
      '--initial-cluster',
      `default=http://127.0.0.1:${etcdPeerPort}`,
      // A throwaway test store: no fsync (it would cost seconds per write on a loaded disk).
      '--unsafe-no-fsync',
      '--log-level',
      'warn',
    ]);
    run('kube-apiserver', options.binaries['kube-apiserver'], [
      '--etcd-servers',
      `http://127.0.0.1:${etcdClientPort}`,
      '--bind-address',
      '127.0.0.1',
      '--advertise-address',
      '127.0.0.1',
      '--secure-port',
      String(apiPort),
      '--tls-cert-file',
      servingCert,
      '--tls-private-key-file',
      servingKey,
      '--client-ca-file',
      caFile,
      '--authorization-mode',
      'Node,RBAC',
      '--enable-admission-plugins',
      'NodeRestriction',
      '--service-account-issuer',
      SERVICE_ACCOUNT_ISSUER,
      '--service-account-key-file',
      saPub,
      '--service-account-signing-key-file',
      saKey,
      '--service-cluster-ip-range',
      SERVICE_CIDR,
      '--kubelet-client-certificate',
      kubeletClient.cert,
      '--kubelet-client-key',
      kubeletClient.key,
      '--kubelet-certificate-authority',
      caFile,
      '--kubelet-preferred-address-types',
      'InternalIP',
      '--allow-privileged',
      '--profiling=false',
      '--v',
      '1',
    ]);
    const readyzMs = await waitForReadyz(
      server,
      ca.certPem,
      admin.credentials,
      () => processes.find((p) => p.name === 'kube-apiserver')!.child,
    );
    log(
      `kube-apiserver ready on ${server} after ${((Date.now() - started) / 1000).toFixed(1)} s (readyz polled ${readyzMs} ms)`,
    );
    // The node agent's kubelet endpoint is signed by the same CA (--kubelet-certificate-authority).
    run('kube-controller-manager', options.binaries['kube-controller-manager'], [
      '--kubeconfig',
      componentKubeconfig('controller-manager', 'system:kube-controller-manager'),
      '--authentication-kubeconfig',
      join(dir, 'controller-manager.kubeconfig'),
      '--authorization-kubeconfig',
      join(dir, 'controller-manager.kubeconfig'),
      '--bind-address',
      '127.0.0.1',
      '--secure-port',
      '0',
      '--leader-elect=false',
      '--use-service-account-credentials',
      '--service-account-private-key-file',
      saKey,
      '--root-ca-file',
      caFile,
      '--cluster-signing-cert-file',
      caFile,
      '--cluster-signing-key-file',
      file('ca.key', ca.keyPem),
      '--service-cluster-ip-range',
      SERVICE_CIDR,
      '--profiling=false',
      '--v',
      '1',
    ]);
    run('kube-scheduler', options.binaries['kube-scheduler'], [
      '--kubeconfig',
      componentKubeconfig('scheduler', 'system:kube-scheduler'),
      '--authentication-kubeconfig',
      join(dir, 'scheduler.kubeconfig'),
      '--authorization-kubeconfig',
      join(dir, 'scheduler.kubeconfig'),
      '--bind-address',
      '127.0.0.1',
      '--secure-port',
      '0',
      '--leader-elect=false',
      '--profiling=false',
      '--v',
      '1',
    ]);
    return {
      dir,
      server,
      ca,
      adminKubeconfig,
      kubeconfigFor: (user) =>
        kubeconfig(server, ca.certPem, clientUser(issueClientCertificate(ca, user)), user.commonName),
      kubeconfigWithToken: (token, user = 'token') => kubeconfig(server, ca.certPem, { token }, user),
      servingCertificate: (ipAddresses) => {
        const c = issueServerCertificate(ca, { ipAddresses });
        return { certPem: c.certPem, keyPem: c.keyPem };
      },
      processes,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Polls /readyz until it answers 200; fails at once when the API server exits. */
async function waitForReadyz(
  server: string,
  caPem: string,
  admin: Credentials,
  child: () => ChildProcess,
  timeoutMs = 120_000,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (child().exitCode !== null || child().signalCode !== null)
      throw new Error('kube-apiserver exited during start-up (see its last lines above)');
    const status = await new Promise<number>((resolve) => {
      const req = https.get(
        `${server}/readyz`,
        { ca: caPem, cert: admin.certPem, key: admin.keyPem, timeout: 2_000 },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(0));
    });
    if (status === 200) return Date.now() - started;
    if (Date.now() - started > timeoutMs)
      throw new Error(`kube-apiserver not ready within ${timeoutMs} ms (last /readyz status ${status})`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
