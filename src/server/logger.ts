import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Paths pino blanks out wherever they appear in a log object. Passwords, tokens and cookies must
 * never reach a log line; the request logger only writes method/path/status anyway, this is the
 * second belt for objects logged by domain code.
 */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'current',
  'next',
  '*.current',
  '*.next',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'authorization',
  '*.authorization',
  'cookie',
  '*.cookie',
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
  // A DICOM study's patient and study modules (kept only with DICOM_KEEP_PATIENT=true): never logged.
  'patient',
  '*.patient',
  // Database errors carry the statement's parameters (user ids, token hashes, emails): PGlite as
  // params/queryOptions, PostgreSQL in detail ("Key (email)=(…)"). The query text and code stay.
  'err.params',
  'err.parameters',
  'err.queryOptions',
  'err.detail',
  'err.cause.params',
  'err.cause.parameters',
  'err.cause.queryOptions',
  'err.cause.detail',
];

export function createLogger(opts: { level: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: opts.level,
      base: { service: 'strokeview' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.destination,
  );
}
