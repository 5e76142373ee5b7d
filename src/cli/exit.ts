import { StrokeviewError } from '../sdk/index.js';

/** The CLI's exit codes (documented in --help and the README). */
export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3 } as const;

/** An error that already knows its exit code and its one-line message. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** How an error ends the process: a line on stderr (or the JSON document) and an exit code. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof CliError) return err.exitCode;
  if (err instanceof StrokeviewError) {
    if (err.code === 'NETWORK_ERROR' || err.status === 502 || err.status === 503 || err.status === 504) return EXIT.unreachable;
    return EXIT.failed;
  }
  return EXIT.failed;
}

export function messageOf(err: unknown): string {
  if (err instanceof StrokeviewError && exitCodeOf(err) === EXIT.unreachable) {
    return `cannot reach the server (${err.message}); is it running, and is --url / STROKEVIEW_URL right?`;
  }
  if (err instanceof StrokeviewError && err.tokenRefused) {
    // Not "pass a token": one was passed, and it is the problem.
    return 'the API token was refused (unknown, revoked or expired); create a new one with `strokeview tokens create <name> --user <email>` and pass it with --token or STROKEVIEW_TOKEN';
  }
  if (err instanceof StrokeviewError && err.code === 'UNAUTHORIZED') {
    return `${err.message}: pass an API token with --token or STROKEVIEW_TOKEN (create one with \`strokeview tokens create <name> --user <email>\`)`;
  }
  // Matched by name: importing env.ts would load server code into every remote command.
  if (err instanceof Error && err.name === 'EnvError') return `invalid environment: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
