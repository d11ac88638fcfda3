// The admin API's client-error type: an HTTP status, a stable code and a message, sent as
// { error: { code, message } } by src/admin/server.ts.

/** An error with an HTTP status and a stable code; services throw it for client errors. */
export class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'AdminError';
  }
}
