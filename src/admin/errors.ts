// The admin API's error codes and the error type that carries one: every code with its HTTP status in
// one registry (docs/errors.md#admin-api lists exactly these; test/unit/error-codes.test.ts checks),
// sent as { error: { code, message } } by src/admin/server.ts.
import { ReportErrorCodes, type ReportErrorCode } from './reports';

/** Every code the admin API answers with, and its status. A refused report answers with its own code. */
export const AdminErrorCodes = {
  BAD_JSON: 400,
  BAD_REQUEST: 400,
  INVALID_IDENTIFIER: 400,
  POLICY_INVALID: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  DEVICE_NOT_FOUND: 404,
  CONNECTOR_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  DEVICE_USER_MISMATCH: 409,
  DEVICE_NOT_REPORTED: 409,
  NO_APP_PASSWORD_SOURCE: 409,
  CONNECTOR_BUSY: 409,
  NO_HELD_SYNC: 409,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INTERNAL: 500,
  STORE_UNAVAILABLE: 503,
} as const;

export type AdminErrorCode = keyof typeof AdminErrorCodes;

/** The status an admin or report code is answered with. */
export const statusOf = (code: AdminErrorCode | ReportErrorCode): number =>
  code in AdminErrorCodes ? AdminErrorCodes[code as AdminErrorCode] : ReportErrorCodes[code as ReportErrorCode];

/** An error with a stable code (its status from the registry); services throw it for client errors. */
export class AdminError extends Error {
  readonly status: number;

  constructor(
    readonly code: AdminErrorCode | ReportErrorCode,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'AdminError';
    this.status = statusOf(code);
  }
}
