// The change channel (Redis pub/sub) on a connection of its own: device, exemption, policy and flag
// changes from every instance, and a signal when a lost subscription is back (events were missed).
import type { Logger } from '../../core/log';
import type { ChangeEvent } from '../device-store';
import { decodeChangeEvent, guardListener } from '../record-codec';
import { delay, type Client, type RedisConnection } from './connection';

export class RedisChangeFeed {
  private readonly changeListeners = new Set<(event: ChangeEvent) => void>();
  private readonly reconnectListeners = new Set<() => void>();
  private subscriber: Client | null = null;
  private subscriberStarted: Promise<void> | null = null;
  /** After the first subscription (or a start without one), every new subscription means events may have been lost. */
  private resubscribeMeansLoss = false;

  constructor(
    private readonly connection: RedisConnection,
    private readonly channel: string,
    private readonly log: Logger,
  ) {}

  async publish(event: ChangeEvent): Promise<void> {
    await this.connection.run('publish', () => this.connection.client.publish(this.channel, JSON.stringify(event)));
  }

  /**
   * Subscribes on a dedicated connection (a subscribed connection cannot serve lookups). If Redis is
   * down, this resolves after connectTimeoutMs and the subscription is made once Redis is back
   * (onReconnect listeners fire then, since events were missed).
   */
  async subscribe(listener: (event: ChangeEvent) => void): Promise<() => Promise<void>> {
    const guarded = guardListener(listener, this.log);
    this.changeListeners.add(guarded);
    await this.startSubscriber();
    return async () => {
      this.changeListeners.delete(guarded);
    };
  }

  /** Fires when the change-channel connection is subscribed again after a loss (only once subscribe() was called). */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  close(): void {
    this.changeListeners.clear();
    this.reconnectListeners.clear();
    this.subscriber?.disconnect();
  }

  private startSubscriber(): Promise<void> {
    if (this.subscriberStarted) return this.subscriberStarted;
    const sub = this.connection.duplicate('redis change channel');
    this.subscriber = sub;
    sub.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      const event = decodeChangeEvent(message);
      if (!event) {
        this.log.warn('unreadable message on the change channel: ignored', { channel, bytes: message.length });
        return;
      }
      for (const listener of this.changeListeners) listener(event);
    });
    let firstSubscribed: () => void = () => undefined;
    const first = new Promise<void>((resolve) => (firstSubscribed = resolve));
    const subscribeNow = async (): Promise<void> => {
      try {
        await sub.subscribe(this.channel);
      } catch (err) {
        this.log.warn('subscribing to the change channel failed; retrying on the next reconnect', { error: (err as Error).message });
        return;
      }
      if (this.resubscribeMeansLoss) this.fireReconnect();
      this.resubscribeMeansLoss = true;
      firstSubscribed();
    };
    // autoResubscribe is off (see connect()): we subscribe on every ready ourselves, so we know when.
    sub.on('ready', () => void subscribeNow());
    this.subscriberStarted = Promise.race([first, delay(this.connection.connectTimeoutMs)]).then(() => {
      // Redis down at start: the subscription comes later, and whatever was published meanwhile is lost.
      this.resubscribeMeansLoss = true;
    });
    return this.subscriberStarted;
  }

  private fireReconnect(): void {
    this.log.info('change channel subscribed again: revalidating (events may have been missed)');
    for (const listener of this.reconnectListeners) {
      try {
        listener();
      } catch (err) {
        this.log.error('store reconnect listener failed', { error: (err as Error).message });
      }
    }
  }
}
