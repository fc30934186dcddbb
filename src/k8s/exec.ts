// Exec over the Kubernetes API (WebSocket, through @kubernetes/client-node): an argv array, never a
// shell string; output streamed to a callback and kept (bounded) for the audit; the exit code read
// from the status channel. No status at all (dropped connection, timeout) is reported as such.
import { Writable } from 'node:stream';
import { Exec, type KubeConfig, type V1Status } from '@kubernetes/client-node';

export interface ExecOutcome {
  /** The command's exit code; undefined when the status never arrived. */
  exitCode: number | undefined;
  timedOut: boolean;
  /** Why there is no exit code, or the failure status message. */
  error?: string;
  /** The API server refused the exec (no WebSocket): the command never ran. */
  notStarted?: boolean;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface ExecCommand {
  namespace: string;
  pod: string;
  container: string;
  argv: readonly string[];
  timeoutMs: number;
  onOutput?: (stream: 'stdout' | 'stderr', text: string) => void;
}

export type ExecRunner = (command: ExecCommand) => Promise<ExecOutcome>;

const KEEP_BYTES = 64 * 1024;

class TailBuffer extends Writable {
  text = '';
  constructor(private readonly onText?: (text: string) => void) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    const text = chunk.toString('utf8');
    this.text = (this.text + text).slice(-KEEP_BYTES);
    this.onText?.(text);
    done();
  }
}

export function exitCodeOf(status: V1Status): number | undefined {
  if (status.status === 'Success') return 0;
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  const code = cause?.message !== undefined ? Number(cause.message) : NaN;
  return Number.isInteger(code) ? code : undefined;
}

export function createExecRunner(kubeConfig: KubeConfig): ExecRunner {
  const exec = new Exec(kubeConfig);
  return (command) =>
    new Promise<ExecOutcome>((resolve) => {
      const started = Date.now();
      const stdout = new TailBuffer((t) => command.onOutput?.('stdout', t));
      const stderr = new TailBuffer((t) => command.onOutput?.('stderr', t));
      let settled = false;
      let socket: { close(): void } | undefined;
      let status: V1Status | undefined;
      const finish = (outcome: Omit<ExecOutcome, 'stdout' | 'stderr' | 'durationMs'>): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        try {
          socket?.close();
        } catch {
          // already closed
        }
        resolve({ ...outcome, stdout: stdout.text, stderr: stderr.text, durationMs: Date.now() - started });
      };
      const timer = setTimeout(
        () => finish({ exitCode: undefined, timedOut: true, error: `no result within ${command.timeoutMs} ms` }),
        command.timeoutMs,
      );
      exec
        .exec(
          command.namespace,
          command.pod,
          command.container,
          [...command.argv],
          stdout,
          stderr,
          null,
          false,
          (s) => {
            status = s;
            const exitCode = exitCodeOf(s);
            finish({
              exitCode,
              timedOut: false,
              ...(s.status === 'Success' ? {} : { error: s.message ?? 'command failed' }),
            });
          },
        )
        .then((ws) => {
          socket = ws;
          if (settled) ws.close();
          ws.on('close', () => {
            // The status message arrives before the close; give it a moment to be parsed.
            setTimeout(() => {
              if (!status)
                finish({
                  exitCode: undefined,
                  timedOut: false,
                  error: 'the exec connection closed without an exit status',
                });
            }, 50);
          });
          ws.on('error', (err: Error) =>
            finish({ exitCode: undefined, timedOut: false, error: `exec connection failed: ${err.message}` }),
          );
        })
        .catch((err: unknown) =>
          finish({
            exitCode: undefined,
            timedOut: false,
            notStarted: true,
            error: `exec could not start: ${(err as Error).message ?? String(err)}`,
          }),
        );
    });
}
