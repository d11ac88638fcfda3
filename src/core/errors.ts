// Configuration errors as an operator sees them: one line per problem, naming file, line and key.
import path from 'node:path';

export interface ConfigIssue {
  /** The file as the caller named it (usually absolute); shown relative to cwd when that is shorter. */
  readonly file: string;
  /** 1-based line, or null when the problem is not tied to a line (e.g. the file cannot be read). */
  readonly line: number | null;
  /** e.g. `checks[1].mode`; empty for the file as a whole. */
  readonly keyPath: string;
  readonly message: string;
}

/** The path to show: relative to the working directory when that is shorter than the path given. */
export function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative !== '' && relative.length < file.length ? relative : file;
}

/** `config/policy.yaml:23: checks[1].mode: must be one of off, report, warn, enforce (got "enforced")` */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line === null ? displayPath(issue.file) : `${displayPath(issue.file)}:${issue.line}`;
  return issue.keyPath === '' ? `${where}: ${issue.message}` : `${where}: ${issue.keyPath}: ${issue.message}`;
}

/** Renders a key path: `checks[1].options.names["com.example.app"]`. */
export function formatKeyPath(keyPath: readonly (string | number)[]): string {
  let out = '';
  for (const segment of keyPath) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** Every problem found in a configuration, not just the first; the message lists them one per line. */
export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** A thrown value as text; never throws itself (a plugin may throw anything, even an object String() rejects). */
export function errorText(err: unknown): string {
  try {
    return err instanceof Error ? err.message : String(err);
  } catch {
    return 'an unprintable value was thrown';
  }
}
