/** Prints one plain line a person can act on, then exits non-zero. Used for every boot failure. */
export function fatal(message: string, code = 1): never {
  process.stderr.write(`strokeview: ${message}\n`);
  process.exit(code);
}
