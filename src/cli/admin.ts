// `mailwarden admin token` and `mailwarden admin hash-token`: make a role-scoped admin token and the
// admin.accessTokens entry that holds only its SHA-256 (see src/admin/roles.ts, docs/admin-api.md).
import { Command, InvalidArgumentError } from 'commander';
import { hashToken, newToken, ROLES, type Role } from '../admin/roles';

/** The YAML list item for admin.accessTokens. */
export function accessTokenEntry(name: string, role: Role, token: string): string {
  return `    - { name: ${name}, role: ${role}, sha256: ${hashToken(token)} }`;
}

function parseRole(value: string): Role {
  if (!(ROLES as readonly string[]).includes(value)) throw new InvalidArgumentError(`must be one of ${ROLES.join(', ')}`);
  return value as Role;
}

function parseName(value: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(value)) throw new InvalidArgumentError('letters, digits, ".", "_" or "-"');
  return value;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

export function registerAdminCommands(program: Command): void {
  const admin = program.command('admin').description('Admin API tokens');
  admin
    .command('token')
    .description('Make a new random token; prints it once, and the admin.accessTokens entry (its hash) to paste into the config')
    .requiredOption('--name <name>', 'who holds it (shown in the audit stream), e.g. jamf-reporter', parseName)
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`, parseRole)
    .action((opts: { name: string; role: Role }) => {
      const token = newToken();
      process.stdout.write(`token (give it to ${opts.name}; it is not stored anywhere): ${token}\n`);
      process.stdout.write(`admin.accessTokens entry:\n${accessTokenEntry(opts.name, opts.role, token)}\n`);
    });
  admin
    .command('hash-token')
    .description('Print the admin.accessTokens entry for an existing token read from standard input (migrating admin.tokens)')
    .requiredOption('--name <name>', 'who holds it (shown in the audit stream)', parseName)
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`, parseRole)
    .action(async (opts: { name: string; role: Role }) => {
      const token = await readStdin();
      if (token === '') throw new Error('no token on standard input (e.g. printf %s "$TOKEN" | mailwarden admin hash-token ...)');
      process.stdout.write(`${accessTokenEntry(opts.name, opts.role, token)}\n`);
    });
}
