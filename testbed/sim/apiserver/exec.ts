// The exec stream of the channel.k8s.io WebSocket protocols (v4 and v5) as the kubelet speaks it
// through the API server: one byte of channel number, then data. 0 stdin, 1 stdout, 2 stderr,
// 3 error/status (JSON metav1.Status in v4+), 4 resize; v5 adds 255 "close this stream".
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { ExecHandler, ExecRequest } from '../types.js';

export const EXEC_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'] as const;

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;
const CLOSE = 255;

/** An AsyncIterable fed by pushes, ended once. */
class ByteQueue implements AsyncIterable<Buffer> {
  private readonly chunks: Buffer[] = [];
  private ended = false;
  private wake: (() => void) | undefined;

  push(chunk: Buffer): void {
    if (this.ended) return;
    this.chunks.push(chunk);
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (;;) {
      const next = this.chunks.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

export function exitStatus(exitCode: number, command: string[], message?: string): Record<string, unknown> {
  if (exitCode === 0) return { metadata: {}, status: 'Success' };
  const detail = message ?? `error executing command [${command.join(' ')}], exit code ${exitCode}`;
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: ${detail}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  };
}

function internalStatus(message: string): Record<string, unknown> {
  return {
    metadata: {},
    status: 'Failure',
    message: `Internal error occurred: ${message}`,
    reason: 'InternalError',
    details: { causes: [{ message }] },
    code: 500,
  };
}

export interface ExecStreams {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

/**
 * Runs one exec session on an accepted WebSocket; resolves when the socket is closed. `socket` is
 * the upgraded connection: as the real API server does, it is ended right after the close frame,
 * without waiting for the client's close frame (the Python client never sends one).
 */
export async function serveExec(
  ws: WebSocket,
  request: ExecRequest,
  streams: ExecStreams,
  handler: ExecHandler,
  socket?: Duplex,
): Promise<void> {
  const stdin = new ByteQueue();
  if (!streams.stdin) stdin.end();
  const abort = new AbortController();
  const v5 = ws.protocol === 'v5.channel.k8s.io';

  const send = (channel: number, data: string | Buffer) => {
    if (ws.readyState !== ws.OPEN) return;
    const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    ws.send(Buffer.concat([Buffer.from([channel]), payload]));
  };

  ws.on('message', (raw: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    const data = Buffer.isBuffer(raw) ? raw : Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw);
    if (!isBinary && data.length === 0) return;
    const channel = data[0];
    const body = data.subarray(1);
    if (channel === STDIN) {
      if (body.length > 0) stdin.push(Buffer.from(body));
    } else if (channel === CLOSE && v5 && body[0] === STDIN) {
      stdin.end();
    } else if (channel === RESIZE) {
      // Terminal size changes mean nothing to a simulated process.
    }
  });
  const closed = new Promise<void>((resolve) =>
    ws.on('close', () => {
      abort.abort();
      stdin.end();
      resolve();
    }),
  );

  let status: Record<string, unknown>;
  try {
    const result = await handler(request, {
      stdout: (chunk) => streams.stdout && send(STDOUT, chunk),
      stderr: (chunk) => streams.stderr && send(request.tty ? STDOUT : STDERR, chunk),
      stdin,
      signal: abort.signal,
    });
    status = exitStatus(result.exitCode, request.command, result.message);
  } catch (err) {
    if ((err as Error).name === 'ExecConnectionDropped') {
      // The connection was lost mid-command (node or network trouble): no status reaches the client.
      ws.terminate();
      await closed;
      return;
    }
    status = internalStatus(`error executing command in container: ${(err as Error).message}`);
  }
  send(ERROR, JSON.stringify(status));
  if (ws.readyState === ws.OPEN) {
    // The close frame is written to the socket at once; end() sends it before the FIN.
    ws.close(1000);
    socket?.end();
  }
  await closed;
}
