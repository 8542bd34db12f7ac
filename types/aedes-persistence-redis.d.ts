// aedes-persistence-redis 12 ships no typings: the part bridges/mqtt/redis-adapter.ts uses.
declare module "aedes-persistence-redis" {
  import type { Cluster, Redis, RedisOptions } from "ioredis";

  namespace aedesPersistenceRedis {
    interface Options extends RedisOptions {
      /** A connection made by the caller, used instead of one made from the other options. */
      conn?: Redis | Cluster;
      /** Offline messages delivered on CONNECT at most (default 1000). */
      maxSessionDelivery?: number;
      packetTTL?: (packet: unknown) => number;
    }

    /** aedes-persistence's callback layer over the Redis store; aedes 1.x calls it in promise form. */
    interface AedesPersistenceRedis {
      setup(broker: unknown): Promise<void>;
      /** Ends the store's subscription on the broker and disconnects its Redis connection. */
      destroy(): Promise<void>;
      [method: string]: unknown;
    }
  }

  function aedesPersistenceRedis(opts?: aedesPersistenceRedis.Options): aedesPersistenceRedis.AedesPersistenceRedis;
  export = aedesPersistenceRedis;
}
