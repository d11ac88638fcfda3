// Builds a connector from its `connectors:` entry: reads its credentials (file or environment
// variable), picks the token flow, and wires the HTTP client with the per-request timeout.
import { readSecret } from '../core/config-connectors';
import type { ConnectorConfig } from '../core/config-types';
import type { Connector, FetchObserver } from './contract';
import { fleetConnector } from './fleet';
import { googleConnector, googleThrottled, GOOGLE_MOBILE_SCOPE } from './google';
import { HttpClient, type TokenSource } from './http';
import { intuneConnector } from './intune';
import { jamfConnector } from './jamf';
import { clientCredentialsToken, googleServiceAccountToken, jamfBasicToken, staticToken, type GoogleServiceAccount } from './tokens';

export function createConnector(config: ConnectorConfig, observer?: FetchObserver): Connector {
  const what = (key: string) => `connectors.${config.name}.${key}`;
  const http = new HttpClient({
    requestTimeoutMs: config.requestTimeoutMs,
    observer,
    ...(config.type === 'google' ? { isThrottled: googleThrottled } : {}),
  });
  switch (config.type) {
    case 'intune': {
      const token = clientCredentialsToken(http, {
        tokenUrl: config.tokenUrl ?? `https://login.microsoftonline.com/${encodeURIComponent(config.tenantId)}/oauth2/v2.0/token`,
        clientId: config.clientId,
        clientSecret: readSecret(config.clientSecret, what('clientSecret')),
        scope: 'https://graph.microsoft.com/.default',
      });
      return intuneConnector({ name: config.name, http, token, graphUrl: config.graphUrl, deviceId: config.deviceId, userField: config.userField, onlyApps: config.onlyApps });
    }
    case 'jamf': {
      const base = config.url.replace(/\/+$/, '');
      let token: TokenSource;
      if (config.token) token = staticToken(readSecret(config.token, what('token')));
      else if (config.clientId && config.clientSecret) {
        token = clientCredentialsToken(http, { tokenUrl: `${base}/api/oauth/token`, clientId: config.clientId, clientSecret: readSecret(config.clientSecret, what('clientSecret')) });
      } else token = jamfBasicToken(http, base, config.username!, readSecret(config.password!, what('password')));
      return jamfConnector({ name: config.name, http, token, baseUrl: base, deviceId: config.deviceId, computersPath: config.computersPath });
    }
    case 'google': {
      const account = parseServiceAccount(readSecret(config.serviceAccountKey, what('serviceAccountKey')), what('serviceAccountKey'));
      const token = googleServiceAccountToken(http, account, { subject: config.subject, scope: GOOGLE_MOBILE_SCOPE, tokenUrl: config.tokenUrl });
      return googleConnector({ name: config.name, http, token, directoryUrl: config.directoryUrl, customerId: config.customerId, deviceId: config.deviceId });
    }
    case 'fleet':
      return fleetConnector({ name: config.name, http, token: staticToken(readSecret(config.token, what('token'))), baseUrl: config.url, deviceId: config.deviceId });
  }
}

function parseServiceAccount(text: string, what: string): GoogleServiceAccount {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${what}: not a JSON service-account key`);
  }
  const p = parsed as Partial<GoogleServiceAccount>;
  if (typeof p.client_email !== 'string' || typeof p.private_key !== 'string') throw new Error(`${what}: the key has no client_email or private_key`);
  return { client_email: p.client_email, private_key: p.private_key, ...(typeof p.token_uri === 'string' ? { token_uri: p.token_uri } : {}) };
}
