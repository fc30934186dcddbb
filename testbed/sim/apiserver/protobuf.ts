// Protobuf request bodies (`application/vnd.kubernetes.protobuf`), as client-go sends them for
// Helm's Secrets driver and kubectl's imperative commands. The schemas live in k8s.io/api, so the
// decoding is done by a Go program of our own module testbed/sim/protobuf (built from that dependency),
// kept running as a subprocess: one length-prefixed request at a time over stdin/stdout.
// Responses stay JSON: client-go sends `Accept: application/vnd.kubernetes.protobuf, */*` and
// decodes by the response's Content-Type.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

export const PROTOBUF_CONTENT_TYPE = 'application/vnd.kubernetes.protobuf';

export interface ProtobufDecoder {
  /** The JSON object a protobuf body carries (with apiVersion and kind). */
  decode(body: Buffer): Promise<unknown>;
  close(): Promise<void>;
}

export class ProtobufDecodeError extends Error {}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** Starts the converter binary (see testbed/sim/protobuf/main.go). */
export function startProtobufDecoder(binary: string): ProtobufDecoder {
  const child: ChildProcessWithoutNullStreams = spawn(binary, [], { stdio: ['pipe', 'pipe', 'pipe'] });
  const pending: Pending[] = [];
  let buffered = Buffer.alloc(0);
  let stderr = '';
  let failure: Error | undefined;
  const fail = (error: Error) => {
    failure ??= error;
    for (const p of pending.splice(0)) p.reject(failure);
  };
  child.on('error', (error) => fail(new Error(`protobuf converter ${binary}: ${error.message}`)));
  child.on('exit', (code, signal) =>
    fail(new Error(`protobuf converter exited (${signal ?? code}): ${stderr.trim()}`)),
  );
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  child.stdout.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 5) {
      const size = buffered.readUInt32BE(1);
      if (buffered.length < 5 + size) break;
      const status = buffered[0];
      const payload = buffered.subarray(5, 5 + size).toString('utf8');
      buffered = buffered.subarray(5 + size);
      const next = pending.shift();
      if (!next) continue;
      if (status === 0) next.resolve(JSON.parse(payload));
      else next.reject(new ProtobufDecodeError(payload));
    }
  });
  return {
    decode(body) {
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        pending.push({ resolve, reject });
        const header = Buffer.alloc(4);
        header.writeUInt32BE(body.length);
        child.stdin.write(Buffer.concat([header, body]));
      });
    },
    close() {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.stdin.end();
      });
    },
  };
}
