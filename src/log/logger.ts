// Structured JSON logs (pino) with stable field names and secrets kept out: credential fields are
// redacted by path, and connection strings anywhere in a logged string lose their password.
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

export interface CreateLoggerOptions {
  level?: LoggerOptions['level'];
  /** Component name, e.g. 'webhook', 'coordinator'. */
  name?: string;
  /** Where to write (tests pass a stream); defaults to stdout. */
  destination?: DestinationStream;
}

const SECRET_KEYS = [
  'password',
  'connection',
  'connectionString',
  'databaseUrl',
  'token',
  'authorization',
  'key',
  'privateKey',
  'cert',
  'secret',
];

export const REDACT_PATHS: string[] = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
];

const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/)([^:/@\s]+):([^@\s]+)@/gi;
const KEYWORD_PASSWORD = /\b(password|passwd|pwd)\s*=\s*('[^']*'|"[^"]*"|[^\s;&]+)/gi;

/** 'postgresql://airflow:s3cret@db/airflow' -> 'postgresql://airflow:***@db/airflow'; also password=… in DSNs. */
export function scrubSecrets(text: string): string {
  return text.replace(URL_CREDENTIALS, '$1$2:***@').replace(KEYWORD_PASSWORD, '$1=***');
}

function scrubValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return scrubSecrets(value);
  if (depth <= 0 || typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => scrubValue(v, depth - 1));
  if (value instanceof Error) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrubValue(v, depth - 1)]));
}

/** A pino logger: `{"level":"info","time":"…","service":"airflow-downgrade-guard","component":…,"msg":…}`. */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const config: LoggerOptions = {
    level: options.level ?? process.env.LOG_LEVEL ?? 'info',
    base: { service: 'airflow-downgrade-guard', ...(options.name ? { component: options.name } : {}) },
    messageKey: 'msg',
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    formatters: {
      level: (label) => ({ level: label }),
      log: (object) => scrubValue(object, 3) as Record<string, unknown>,
    },
    hooks: {
      logMethod(args, method) {
        const scrubbed = args.map((a) => (typeof a === 'string' ? scrubSecrets(a) : a)) as Parameters<typeof method>;
        method.apply(this, scrubbed);
      },
    },
  };
  return options.destination ? pino(config, options.destination) : pino(config);
}

/** A logger that writes nothing (tests, library use without logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
