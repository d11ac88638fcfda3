// Connection caps of one mail listener: at most `maxConnections` open at once, and at most
// `maxConnectionsPerAddress` from one client address, so idle sockets cannot use up the process's
// file descriptors (the admin listener and other clients keep working). Shared by IMAP and SMTP.

export interface ConnectionLimitSettings {
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
}

export type ConnectionSlot =
  | { readonly ok: true; readonly release: () => void }
  | { readonly ok: false; readonly reason: 'listener-full' | 'address-full' };

export class ConnectionLimits {
  private open = 0;
  private readonly byAddress = new Map<string, number>();

  constructor(private readonly settings: ConnectionLimitSettings) {}

  /** A slot on the listener, counted against `address` too when it is known. `release` is idempotent. */
  acquire(address: string | undefined): ConnectionSlot {
    if (this.open >= this.settings.maxConnections) return { ok: false, reason: 'listener-full' };
    const key = address ?? '';
    const fromAddress = this.byAddress.get(key) ?? 0;
    if (address !== undefined && fromAddress >= this.settings.maxConnectionsPerAddress) return { ok: false, reason: 'address-full' };
    this.open += 1;
    this.byAddress.set(key, fromAddress + 1);
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.open -= 1;
        const left = (this.byAddress.get(key) ?? 1) - 1;
        if (left > 0) this.byAddress.set(key, left);
        else this.byAddress.delete(key);
      },
    };
  }

  /** Connections open now (metrics, tests). */
  get size(): number {
    return this.open;
  }
}
