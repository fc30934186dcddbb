// The floor: a bare Node HTTPS server, run as its own process, that reads and parses the same
// AdmissionReview JSON and answers a fixed "allowed" response. Whatever the guard costs on top of
// this is what the guard itself adds.
//
//   node dist-testbed/testbed/bench/floor-server.js <cert.pem> <key.pem>   (prints "listening <port>")
import { readFileSync } from 'node:fs';
import https from 'node:https';

const [certFile, keyFile] = process.argv.slice(2);
if (!certFile || !keyFile) {
  process.stderr.write('usage: floor-server <cert.pem> <key.pem>\n');
  process.exit(2);
}

const server = https.createServer(
  { cert: readFileSync(certFile), key: readFileSync(keyFile), keepAliveTimeout: 60_000 },
  (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let uid = '';
      try {
        const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { request?: { uid?: string } };
        uid = review.request?.uid ?? '';
      } catch {
        res.writeHead(400).end();
        return;
      }
      const body = JSON.stringify({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        response: { uid, allowed: true },
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  },
);

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
