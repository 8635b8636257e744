import { randomUUID } from 'node:crypto';
import type { PoolState } from '../pool';
import { link, unlink } from './refs';
import { makeRecord } from './schema';

/** sm_config key holding the layer a base copy stands for (simulator bookkeeping). */
export const LAYER_KEY = 'sim-layer';

/**
 * What the pool's records show of its storage, kept up to date from what changed, so that an
 * operation costs the same with 10 VMs or 10,000: the chains of the disks it touched are looked
 * at again, the space of their SRs adjusted by the difference.
 */
interface StorageView {
  /** layer → the base copy VDI standing for it */
  baseCopies: Map<string, string>;
  /** root layer → the SR its tree lives in and the bytes its layers hold */
  trees: Map<string, { sr: string; bytes: number }>;
  /** VDI ref → the SR and virtual size it counted in */
  virtual: Map<string, { sr: string; size: number }>;
  /** SR ref → bytes held by its layers, and virtual sizes of its VDIs */
  physicalBySr: Map<string, number>;
  virtualBySr: Map<string, number>;
  /** VDI records changed since the last refresh */
  dirtyVdis: Set<string>;
}

const views = new WeakMap<PoolState, StorageView>();

/**
 * Brings the records up to date with the block store: the chains (below) of every disk whose
 * layers changed, each VDI's `physical_utilisation`, and each SR's `physical_utilisation` (bytes
 * held by its layers) and `virtual_allocation` (virtual sizes of its VDIs).
 */
export function refreshStorage(pool: PoolState): void {
  const { db, store } = pool;
  let view = views.get(pool);
  const changed = store.takeChanges();
  let roots: Iterable<string>;
  if (!view) {
    // the first refresh of this pool (built or loaded): everything, once
    const fresh: StorageView = {
      baseCopies: new Map(),
      trees: new Map(),
      virtual: new Map(),
      physicalBySr: new Map(),
      virtualBySr: new Map(),
      dirtyVdis: new Set(),
    };
    view = fresh;
    views.set(pool, fresh);
    db.onRecordChange = (cls, ref) => cls === 'VDI' && fresh.dirtyVdis.add(ref);
    for (const [ref, r] of db.all('VDI')) {
      fresh.dirtyVdis.add(ref);
      const layer = (r.sm_config as Record<string, string>)[LAYER_KEY];
      if (layer === undefined) continue;
      fresh.baseCopies.set(layer, ref);
      if (!store.hasLayer(layer)) forgetLayer(pool, fresh, layer);
    }
    roots = store.roots();
  } else {
    const found = new Set<string>();
    for (const id of changed) {
      if (store.hasLayer(id)) found.add(store.rootOf(id));
      else forgetLayer(pool, view, id);
    }
    roots = found;
  }
  for (const root of roots) refreshTree(pool, view, root);
  for (const ref of view.dirtyVdis) countVirtual(pool, view, ref);
  view.dirtyVdis.clear();
  for (const [sr, r] of db.all('SR')) {
    const used = view.physicalBySr.get(sr) ?? 0;
    const virtual = view.virtualBySr.get(sr) ?? 0;
    if (r.physical_utilisation !== used || r.virtual_allocation !== virtual) {
      db.update('SR', sr, (x) => {
        x.physical_utilisation = used;
        x.virtual_allocation = virtual;
      });
    }
  }
  pool.changed();
}

/** A layer gone from the store: its base copy goes, and its tree's bytes if it was a root. */
function forgetLayer(pool: PoolState, view: StorageView, layer: string): void {
  const base = view.baseCopies.get(layer);
  if (base !== undefined) removeBaseCopy(pool, view, layer, base);
  const tree = view.trees.get(layer);
  if (tree) {
    add(view.physicalBySr, tree.sr, -tree.bytes);
    view.trees.delete(layer);
  }
}

function removeBaseCopy(pool: PoolState, view: StorageView, layer: string, ref: string): void {
  view.baseCopies.delete(layer);
  const r = pool.db.tryGet('VDI', ref);
  if (!r) return;
  unlink(pool.db, 'SR', String(r.SR), 'VDIs', ref);
  pool.db.remove('VDI', ref);
}

function countVirtual(pool: PoolState, view: StorageView, ref: string): void {
  const old = view.virtual.get(ref);
  if (old) add(view.virtualBySr, old.sr, -old.size);
  const r = pool.db.tryGet('VDI', ref);
  if (!r) {
    view.virtual.delete(ref);
    return;
  }
  const now = { sr: String(r.SR), size: Number(r.virtual_size) };
  view.virtual.set(ref, now);
  add(view.virtualBySr, now.sr, now.size);
  // a VDI without storage (its data destroyed) holds nothing; base copies keep their layer's size
  const sm = r.sm_config as Record<string, string>;
  if (sm[LAYER_KEY] === undefined && !pool.store.hasVdi(String(r.uuid)) && r.physical_utilisation !== 0) {
    pool.db.update('VDI', ref, (x) => {
      x.physical_utilisation = 0;
    });
  }
}

function add(totals: Map<string, number>, key: string, by: number): void {
  totals.set(key, (totals.get(key) ?? 0) + by);
}

/**
 * Shows one disk's chains the way XCP-ng's VHD SRs do: every VDI's `sm_config['vhd-parent']` names
 * the VDI holding its parent layer, and a layer no VDI points at any more (left by a deleted
 * snapshot that has not coalesced yet) appears as a hidden `base copy` VDI with `managed = false` —
 * what Xen Orchestra counts to call a chain unhealthy. Base copies vanish when their layer is merged.
 * A tree is a disk with its snapshots and clones: what one operation can change.
 */
function refreshTree(pool: PoolState, view: StorageView, root: string): void {
  const { db, store } = pool;
  const layers = store.treeOf(root);
  const record = (uuid: string) => {
    const ref = db.refOfUuid('VDI', uuid);
    return ref === undefined ? undefined : { ref, r: db.get('VDI', ref) };
  };
  // layer → the VDI standing for it (a snapshot's head first, any head otherwise)
  const owner = new Map<string, string>();
  let sr: string | undefined;
  let bytes = 0;
  for (const layer of layers) {
    bytes += store.layerBytes(layer);
    for (const uuid of store.headsOfLayer(layer)) {
      const rec = record(uuid)?.r;
      if (!owner.has(layer) || rec?.is_a_snapshot) owner.set(layer, uuid);
      if (rec && sr === undefined) sr = String(rec.SR);
    }
  }
  // base copies: for the layers no VDI points at (they have children, or they would be gone)
  for (const layer of layers) {
    const wanted = !owner.has(layer) && store.childrenOfLayer(layer).size > 0;
    const existing = view.baseCopies.get(layer);
    if (existing !== undefined && (!wanted || !db.has('VDI', existing))) {
      removeBaseCopy(pool, view, layer, existing);
    } else if (existing !== undefined) {
      owner.set(layer, String(db.get('VDI', existing).uuid));
      continue;
    }
    if (!wanted) continue;
    // a base copy lives in the SR of the disks built on it, with their size
    const child = firstHeadUnder(pool, layer);
    const childRec = child === undefined ? undefined : record(child)?.r;
    if (!childRec) continue;
    const uuid = randomUUID();
    const ref = db.insert(
      'VDI',
      makeRecord('VDI', {
        uuid,
        location: uuid,
        name_label: 'base copy',
        SR: childRec.SR,
        virtual_size: childRec.virtual_size,
        physical_utilisation: store.layerBytes(layer),
        managed: false,
        read_only: true,
        sm_config: { vdi_type: 'vhd', [LAYER_KEY]: layer },
      }),
    );
    link(db, 'SR', String(childRec.SR), 'VDIs', ref);
    view.baseCopies.set(layer, ref);
    owner.set(layer, uuid);
  }
  // vhd-parent and space of every VDI of the tree with storage, and of every base copy
  const setParent = (ref: string, r: Record<string, unknown>, parentLayer: string | null, used: number) => {
    const sm = r.sm_config as Record<string, string>;
    const want = parentLayer === null ? undefined : owner.get(parentLayer);
    if (sm['vhd-parent'] === want && sm.vdi_type === 'vhd' && r.physical_utilisation === used) return;
    db.update('VDI', ref, (x) => {
      const next: Record<string, string> = { ...(x.sm_config as Record<string, string>), vdi_type: 'vhd' };
      if (want === undefined) delete next['vhd-parent'];
      else next['vhd-parent'] = want;
      x.sm_config = next;
      x.physical_utilisation = used;
    });
  };
  for (const layer of layers) {
    const parent = store.parentOf(layer);
    const used = store.layerBytes(layer);
    for (const uuid of store.headsOfLayer(layer)) {
      const rec = record(uuid);
      // a snapshot standing for its own head layer points at that layer's parent
      if (rec) setParent(rec.ref, rec.r, owner.get(layer) === uuid ? parent : layer, used);
    }
    const base = view.baseCopies.get(layer);
    const baseRec = base === undefined ? undefined : db.tryGet('VDI', base);
    if (base !== undefined && baseRec)
      setParent(base, baseRec, parent, baseRec.physical_utilisation as number);
  }
  // the tree's bytes count in its SR
  const old = view.trees.get(root);
  if (old) add(view.physicalBySr, old.sr, -old.bytes);
  const where = sr ?? old?.sr;
  if (where === undefined) view.trees.delete(root);
  else {
    view.trees.set(root, { sr: where, bytes });
    add(view.physicalBySr, where, bytes);
  }
}

/** The first VDI (breadth first) whose head is `layer` or under it. */
function firstHeadUnder(pool: PoolState, layer: string): string | undefined {
  for (const id of pool.store.treeOf(layer)) {
    const [uuid] = pool.store.headsOfLayer(id);
    if (uuid !== undefined) return uuid;
  }
  return undefined;
}
