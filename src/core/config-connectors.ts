// The `connectors:` section of mailwarden.yaml: its JSON schema (one branch per source type), the
// rules the schema cannot express, secret-file paths resolved against the config file, and secrets
// read from files or environment variables (never inline, never logged).
import fs from 'node:fs';
import path from 'node:path';
import type { SchemaObject } from 'ajv';
import type { ConnectorConfig, SecretSource } from './config-types';

type Schema = SchemaObject;
type KeyPath = readonly (string | number)[];

const text: Schema = { type: 'string', minLength: 1 };
const int = (minimum: number, value: number): Schema => ({ type: 'integer', minimum, default: value });
const percent = (value: number): Schema => ({ type: 'number', minimum: 0, maximum: 100, default: value });
const oneOf = (values: string[], value?: string): Schema => ({ type: 'string', enum: values, ...(value ? { default: value } : {}) });
const url: Schema = { type: 'string', pattern: '^https?://\\S+$' };
const withDefault = (schema: Schema, value: unknown): Schema => ({ ...schema, default: value });

/** `{file: path}` or `{env: NAME}`: an inline string is refused by the schema (it would end up in backups and diffs). */
export const secret: Schema = {
  type: 'object',
  additionalProperties: false,
  properties: { file: text, env: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' } },
  minProperties: 1,
  maxProperties: 1,
};

const common: Record<string, Schema> = {
  name: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' },
  enabled: { type: 'boolean', default: true },
  intervalSeconds: int(60, 900),
  requestTimeoutMs: int(100, 30000),
  syncTimeoutSeconds: int(1, 1800),
  staleAfterSeconds: int(60, 3600),
  onStaleSource: oneOf(['last-known', 'stale'], 'last-known'),
  removeAfterAbsentSyncs: int(1, 3),
  maxRemovedPercent: percent(10),
  maxInventoryLostPercent: percent(10),
};

const branch = (type: string, properties: Record<string, Schema>, required: string[]): Schema => ({
  type: 'object',
  additionalProperties: false,
  properties: { type: { const: type }, ...common, ...properties },
  required: ['type', 'name', ...required],
});

export const connectorSchema: Schema = {
  type: 'object',
  discriminator: { propertyName: 'type' },
  oneOf: [
    branch(
      'intune',
      {
        tenantId: text,
        clientId: text,
        clientSecret: secret,
        deviceId: oneOf(['mdm', 'entra', 'serial'], 'mdm'),
        userField: oneOf(['upn', 'email'], 'upn'),
        graphUrl: withDefault(url, 'https://graph.microsoft.com/v1.0'),
        tokenUrl: url,
        onlyApps: { type: 'array', items: text, minItems: 1, uniqueItems: true },
      },
      ['tenantId', 'clientId', 'clientSecret'],
    ),
    branch(
      'jamf',
      {
        url,
        deviceId: oneOf(['mdm', 'serial', 'udid'], 'serial'),
        computersPath: withDefault({ type: 'string', pattern: '^/\\S*$' }, '/api/v1/computers-inventory'),
        clientId: text,
        clientSecret: secret,
        username: text,
        password: secret,
        token: secret,
      },
      ['url'],
    ),
    branch(
      'google',
      {
        serviceAccountKey: secret,
        subject: text,
        customerId: withDefault(text, 'my_customer'),
        deviceId: oneOf(['mdm', 'udid', 'serial'], 'udid'),
        directoryUrl: withDefault(url, 'https://admin.googleapis.com/admin/directory/v1'),
        tokenUrl: url,
      },
      ['serviceAccountKey', 'subject'],
    ),
    branch('fleet', { url, token: secret, deviceId: oneOf(['mdm', 'udid', 'serial'], 'udid') }, ['url', 'token']),
  ],
};

export const connectorsSchema: Schema = { type: 'array', items: connectorSchema, default: [] };

/** Rules between keys: unique names, exactly one Jamf credential kind. */
export function connectorRules(connectors: readonly ConnectorConfig[], problem: (keyPath: KeyPath, message: string, linePath?: KeyPath) => void): void {
  const seen = new Set<string>();
  connectors.forEach((c, i) => {
    const at = ['connectors', i];
    if (seen.has(c.name)) problem([...at, 'name'], `connector name "${c.name}" is used twice`);
    seen.add(c.name);
    if (c.type === 'jamf') {
      const kinds = [c.clientId !== undefined || c.clientSecret !== undefined, c.username !== undefined || c.password !== undefined, c.token !== undefined].filter(Boolean).length;
      if (kinds !== 1) problem([...at, 'clientId'], 'set one Jamf credential: clientId + clientSecret (API client), username + password, or token', at);
      else if ((c.clientId === undefined) !== (c.clientSecret === undefined)) problem([...at, c.clientId === undefined ? 'clientId' : 'clientSecret'], 'clientId and clientSecret go together', at);
      else if ((c.username === undefined) !== (c.password === undefined)) problem([...at, c.username === undefined ? 'username' : 'password'], 'username and password go together', at);
    }
  });
}

/** Secret files resolved against the config file's folder. */
export function resolveConnectorPaths(connectors: readonly ConnectorConfig[], dir: string): ConnectorConfig[] {
  const at = (s: SecretSource | undefined) => (s && 'file' in s ? { file: path.resolve(dir, s.file) } : s);
  return connectors.map((c) => {
    switch (c.type) {
      case 'intune':
        return { ...c, clientSecret: at(c.clientSecret)! };
      case 'jamf':
        return { ...c, ...(c.clientSecret && { clientSecret: at(c.clientSecret) }), ...(c.password && { password: at(c.password) }), ...(c.token && { token: at(c.token) }) };
      case 'google':
        return { ...c, serviceAccountKey: at(c.serviceAccountKey)! };
      case 'fleet':
        return { ...c, token: at(c.token)! };
    }
  });
}

/** Reads a secret (trailing newline trimmed); the error names the source, never the value. */
export function readSecret(source: SecretSource, what: string, env: NodeJS.ProcessEnv = process.env): string {
  if ('env' in source) {
    const value = env[source.env];
    if (value === undefined || value === '') throw new Error(`${what}: environment variable ${source.env} is not set`);
    return value.trim();
  }
  try {
    const value = fs.readFileSync(source.file, 'utf8').trim();
    if (value === '') throw new Error('empty');
    return value;
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new Error(`${what}: cannot read ${source.file} (${reason})`);
  }
}
