import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { XRecord } from './objects/db';
import type { PoolState } from './pool';
import { XFloat, XInt32 } from './rpc/values';
import type { StoreMeta } from './storage/blockstore';

interface SavedState {
  version: 1;
  poolRef: string;
  hostRef: string;
  db: { generation: number; tables: Record<string, Record<string, XRecord>> };
  store: StoreMeta;
  settings: PoolState['settings'];
}

/** JSON with Date and XFloat kept (`{"$date":…}`, `{"$float":…}`). */
function replacer(this: any, key: string, value: unknown): unknown {
  const raw = this[key];
  if (raw instanceof Date) return { $date: raw.toISOString() };
  if (raw instanceof XFloat) return { $float: raw.value };
  if (raw instanceof XInt32) return raw.value;
  return value;
}

function reviver(_key: string, value: any): unknown {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    if (typeof value.$date === 'string' && Object.keys(value).length === 1) return new Date(value.$date);
    if (typeof value.$float === 'number' && Object.keys(value).length === 1) return new XFloat(value.$float);
  }
  return value;
}

export const statePath = (dir: string) => join(dir, 'state.json');

export function saveState(pool: PoolState, dir: string): void {
  const state: SavedState = {
    version: 1,
    poolRef: pool.poolRef,
    hostRef: pool.hostRef,
    db: pool.db.dump(),
    store: pool.store.dump(),
    settings: pool.settings,
  };
  const tmp = `${statePath(dir)}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, replacer));
  renameSync(tmp, statePath(dir));
}

/** Loads a saved pool; false when there is none. */
export function loadState(pool: PoolState, dir: string): boolean {
  if (!existsSync(statePath(dir))) return false;
  const state = JSON.parse(readFileSync(statePath(dir), 'utf8'), reviver) as SavedState;
  if (state.version !== 1) throw new Error(`${statePath(dir)}: unsupported state version ${state.version}`);
  pool.db.load(state.db);
  pool.store.load(state.store);
  Object.assign(pool.settings, state.settings);
  pool.poolRef = state.poolRef;
  pool.hostRef = state.hostRef;
  return true;
}
