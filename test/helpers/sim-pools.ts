// Activities against the simulator without a Temporal worker: the simulator over real HTTP, and the
// worker's own pool registry logged in to its pools (the password by reference, as in a config).
import { createPoolRegistry, type PoolRegistry } from '../../activities/pools';
import { validateConfig } from '../../core/config/validate';
import { type Scenario, type Simulator, startSimulator } from '../../simulator';

export interface SimPools {
  sim: Simulator;
  pools: PoolRegistry;
  close(): Promise<void>;
}

/** Starts `scenario`'s pools; each is reached with the first credentials of its scenario. */
export async function startSimPools(scenario: Scenario): Promise<SimPools> {
  const sim = await startSimulator({ scenario });
  const env: Record<string, string> = {};
  const pools = scenario.pools.map((p, i) => {
    const name = `XCPB_TEST_POOL_PW_${i}`;
    const { username, password } = p.credentials[0];
    env[name] = password;
    return { id: p.id, url: sim.pools[i].url, username, password: { env: name } };
  });
  Object.assign(process.env, env);
  const checked = validateConfig({ pools });
  if (!checked.ok) throw new Error(JSON.stringify(checked.problems));
  const registry = createPoolRegistry(checked.config.pools);
  return {
    sim,
    pools: registry,
    async close() {
      await registry.close();
      await sim.close();
    },
  };
}
