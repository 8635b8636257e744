import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPool } from './build';
import { SimControl } from './control/client';
import { createPoolServer } from './http/server';
import { buildMethodTable } from './objects/index';
import { recoverAfterRestart } from './objects/restart';
import { coalesceSoon } from './objects/vdi';
import { loadState, saveState } from './persist';
import { PoolState } from './pool';
import { loadScenario, type Scenario } from './scenario';
import { BlockStore } from './storage/blockstore';

export type { FaultSpec, SimSnapshot, SimStats, VdiInfo } from './control/client';
export { SimControl } from './control/client';
export { loadScenario, parseScenario, type Scenario } from './scenario';

export interface SimPool {
  id: string;
  /** http://127.0.0.1:PORT */
  url: string;
  username: string;
  password: string;
  control: SimControl;
  /** in-process access to the pool's state (tests) */
  state: PoolState;
}

export interface Simulator {
  pools: SimPool[];
  pool(id: string): SimPool;
  close(): Promise<void>;
}

export interface StartOptions {
  /** a scenario object, a YAML/JSON file path, or `demo` */
  scenario: Scenario | string;
  /** keeps state and disks across restarts; a temporary folder (deleted on close) otherwise */
  dataDir?: string;
  /** port of the first pool, next pools on the following ports; 0 (default) = free ports */
  basePort?: number;
  host?: string;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Starts every pool of the scenario, each on its own port, in this process. */
export async function startSimulator(opts: StartOptions): Promise<Simulator> {
  const scenario = loadScenario(opts.scenario);
  const host = opts.host ?? '127.0.0.1';
  const tempDir = opts.dataDir ? undefined : mkdtempSync(join(tmpdir(), 'xcpb-sim-'));
  const root = opts.dataDir ?? tempDir!;
  const methods = buildMethodTable();
  const pools: SimPool[] = [];
  const servers: Server[] = [];
  const states: { state: PoolState; dir: string }[] = [];
  try {
    for (const [i, sc] of scenario.pools.entries()) {
      const dir = join(root, sc.id);
      mkdirSync(dir, { recursive: true });
      const state = new PoolState(sc.id, sc.credentials, new BlockStore(join(dir, 'blocks')));
      state.methods = methods;
      if (loadState(state, dir)) recoverAfterRestart(state);
      else await buildPool(state, sc);
      if (!tempDir) {
        // only a kept data dir needs the state on disk (saved shortly after each change)
        saveState(state, dir);
        state.onChange = () => {
          saveState(state, dir);
          // a layer's file goes only once the state that no longer names it is on disk
          void state.store.saved();
        };
        state.db.onMutate = () => state.changed();
        state.store.requestSave = () => state.changed();
      }
      // a merge the last run did not finish (or never started) resumes
      coalesceSoon(state);
      states.push({ state, dir });
      const server = createPoolServer(state);
      servers.push(server);
      const port = await listen(server, sc.port ?? (opts.basePort ? opts.basePort + i : 0), host);
      const url = `http://${host}:${port}`;
      state.db.update('host', state.hostRef, (r) => {
        r.address = host;
      });
      pools.push({
        id: sc.id,
        url,
        username: sc.credentials[0].username,
        password: sc.credentials[0].password,
        control: new SimControl(url),
        state,
      });
    }
  } catch (e) {
    for (const s of servers) s.close();
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
    throw e;
  }
  let closed = false;
  return {
    pools,
    pool(id) {
      const p = pools.find((x) => x.id === id);
      if (!p) throw new Error(`no simulated pool ${id} (pools: ${pools.map((x) => x.id).join(', ')})`);
      return p;
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
      for (const { state, dir } of states) {
        state.flushTimers();
        state.onChange = undefined;
        // the garbage collector stops first (a merge in progress gives up safely), then the save
        await state.store.close();
        if (!tempDir) {
          saveState(state, dir);
          await state.store.saved();
        }
      }
      if (tempDir) rmSync(tempDir, { recursive: true, force: true });
    },
  };
}
