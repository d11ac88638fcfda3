// Exit statuses of the `mailwarden` command, one per kind of failure so scripts and systemd can tell
// them apart (docs/errors.md#command-line). The values are sysexits(3)'s, as Postfix and Dovecot use.
export const EXIT = {
  ok: 0,
  /** Anything not classified below (a bug, an unexpected answer). */
  failure: 1,
  /** EX_USAGE: unknown option, missing or malformed argument. */
  usage: 64,
  /** EX_UNAVAILABLE: the admin API or the store cannot be reached, or answers 503. */
  unreachable: 69,
  /** EX_NOPERM: the running instance refused the operation (wrong token, unknown device, conflict, invalid request). */
  refused: 77,
  /** EX_CONFIG: the configuration or policy is invalid or cannot be read. */
  config: 78,
} as const;

export type ExitStatus = (typeof EXIT)[keyof typeof EXIT];

/** An error that knows its exit status; its message is the one line printed after `mailwarden: `. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitStatus: ExitStatus,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** A wrong command line: printed with the usage hint, exit status 64. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.usage);
    this.name = 'UsageError';
  }
}
