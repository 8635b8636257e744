// One XAPI session per pool per worker process, opened on first use with the credentials the
// config references. Secrets are resolved here, in the worker, and never leave it.
import { resolveSecret } from '../config/secrets';
import type { PoolConfig } from '../core/config/schema';
import { connectXapi, type XapiClient } from '../xapi';

export interface PoolRegistry {
  ids(): string[];
  client(poolId: string): Promise<XapiClient>;
  close(): Promise<void>;
}

export function createPoolRegistry(pools: readonly PoolConfig[], connect = connectXapi): PoolRegistry {
  const byId = new Map(pools.map((p) => [p.id, p]));
  const sessions = new Map<string, Promise<XapiClient>>();
  return {
    ids: () => [...byId.keys()],
    client(poolId) {
      const pool = byId.get(poolId);
      if (!pool) return Promise.reject(new Error(`unknown pool "${poolId}" (not in this worker's config)`));
      let session = sessions.get(poolId);
      if (!session) {
        session = (async () =>
          connect({
            url: pool.url,
            username: pool.username,
            password: await resolveSecret(pool.password, `pools.${pool.id}.password`),
            allowUnauthorized: pool.allowUnauthorized,
          }))();
        // A failed login is not cached: the next activity attempt tries again.
        session.catch(() => sessions.delete(poolId));
        sessions.set(poolId, session);
      }
      return session;
    },
    async close() {
      const all = [...sessions.values()];
      sessions.clear();
      await Promise.all(all.map(async (s) => (await s.catch(() => undefined))?.logout()));
    },
  };
}
