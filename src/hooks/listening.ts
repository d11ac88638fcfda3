// Binding a hook's server and closing it: the bound address, and a close that also ends open sockets.
import type net from 'node:net';

export interface HookListener {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/** Listens on host:port (a bind error such as EADDRINUSE rejects); close() destroys the sockets still in `sockets`. */
export async function listenHook(server: net.Server, sockets: ReadonlySet<net.Socket>, host: string, port: number): Promise<HookListener> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as net.AddressInfo;
  return {
    address: { host: address.address, port: address.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}
