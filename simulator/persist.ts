import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { XRecord } from './objects/db';
import { SCHEMAS } from './objects/schema';
import type { PoolState } from './pool';
import { XFloat } from './rpc/values';
import type { StoreMeta } from './storage/blockstore';

interface SavedState {
  version: 1 | 2;
  poolRef: string;
  hostRef: string;
  db: { generation: number; tables: Record<string, Record<string, XRecord>> };
  store: StoreMeta;
  settings: PoolState['settings'];
}

/**
 * The saved state is plain JSON (a Date as its ISO string, an XFloat as its number: their toJSON),
 * with no replacer, which would cost a call per value: a pool of 10,000 VMs is tens of MB. Loading
 * gives Date and float fields their types back from the class schemas.
 */
const typedFields = new Map<string, [field: string, kind: 'date' | 'float'][]>();

function fieldsToRevive(cls: string): [string, 'date' | 'float'][] {
  let fields = typedFields.get(cls);
  if (!fields) {
    fields = [];
    for (const [field, like] of Object.entries(SCHEMAS[cls]?.defaults() ?? {})) {
      if (like instanceof Date) fields.push([field, 'date']);
      else if (like instanceof XFloat) fields.push([field, 'float']);
    }
    typedFields.set(cls, fields);
  }
  return fields;
}

function reviveRecords(tables: Record<string, Record<string, XRecord>>): void {
  for (const [cls, rows] of Object.entries(tables)) {
    const fields = fieldsToRevive(cls);
    for (const record of Object.values(rows)) {
      for (const [field, kind] of fields) {
        const v = record[field];
        if (kind === 'date' && typeof v === 'string') record[field] = new Date(v);
        else if (kind === 'float' && typeof v === 'number') record[field] = new XFloat(v);
      }
    }
  }
}

/** Version 1 states: `{"$date":…}` and `{"$float":…}` objects. */
function legacyReviver(_key: string, value: any): unknown {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    if (typeof value.$date === 'string' && Object.keys(value).length === 1) return new Date(value.$date);
    if (typeof value.$float === 'number' && Object.keys(value).length === 1) return new XFloat(value.$float);
  }
  return value;
}

export const statePath = (dir: string) => join(dir, 'state.json');

export function saveState(pool: PoolState, dir: string): void {
  const state: SavedState = {
    version: 2,
    poolRef: pool.poolRef,
    hostRef: pool.hostRef,
    db: pool.db.dump(),
    store: pool.store.dump(),
    settings: pool.settings,
  };
  const tmp = `${statePath(dir)}.tmp`;
  writeFileSync(tmp, JSON.stringify(state));
  renameSync(tmp, statePath(dir));
}

/** Loads a saved pool; false when there is none. */
export function loadState(pool: PoolState, dir: string): boolean {
  if (!existsSync(statePath(dir))) return false;
  const text = readFileSync(statePath(dir), 'utf8');
  // version 1 wrote typed values as `{"$date":…}` objects; version 2 is plain JSON
  const legacy = /^\{"version":1,/.test(text);
  const state = (legacy ? JSON.parse(text, legacyReviver) : JSON.parse(text)) as SavedState;
  if (state.version !== 1 && state.version !== 2)
    throw new Error(`${statePath(dir)}: unsupported state version ${state.version}`);
  if (!legacy) reviveRecords(state.db.tables);
  pool.db.load(state.db);
  pool.store.load(state.store);
  Object.assign(pool.settings, state.settings);
  pool.poolRef = state.poolRef;
  pool.hostRef = state.hostRef;
  return true;
}
