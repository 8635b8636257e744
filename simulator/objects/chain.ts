import { randomUUID } from 'node:crypto';
import type { PoolState } from '../pool';
import { link, unlink } from './refs';
import { makeRecord } from './schema';

/** sm_config key holding the layer a base copy stands for (simulator bookkeeping). */
export const LAYER_KEY = 'sim-layer';

/**
 * Shows the disk chains the way XCP-ng's VHD SRs do: every VDI's `sm_config['vhd-parent']` names the
 * VDI holding its parent layer, and a layer no VDI points at any more (left by a deleted snapshot
 * that has not coalesced yet) appears as a hidden `base copy` VDI with `managed = false` — what
 * Xen Orchestra counts to call a chain unhealthy. Base copies vanish when their layer is merged.
 */
export function refreshChains(pool: PoolState): void {
  const { db, store } = pool;
  const vdiByUuid = new Map(db.all('VDI').map(([ref, r]) => [String(r.uuid), { ref, r }]));
  // layer → the VDI standing for it (a snapshot's head first, any head otherwise)
  const owner = new Map<string, string>();
  for (const [vdi, layer] of store.headEntries()) {
    const rec = vdiByUuid.get(vdi)?.r;
    if (!owner.has(layer) || rec?.is_a_snapshot) owner.set(layer, vdi);
  }
  const unowned = new Set(store.unownedParents());
  const baseCopies = db
    .all('VDI')
    .filter(([, r]) => (r.sm_config as Record<string, string>)[LAYER_KEY] !== undefined);
  for (const [ref, r] of baseCopies) {
    const layer = (r.sm_config as Record<string, string>)[LAYER_KEY];
    if (unowned.has(layer) && !owner.has(layer)) {
      owner.set(layer, String(r.uuid));
      continue;
    }
    unlink(db, 'SR', String(r.SR), 'VDIs', ref);
    db.remove('VDI', ref);
  }
  for (const layer of unowned) {
    if (owner.has(layer)) continue;
    // a base copy lives in the SR of the disks built on it, with their size
    const child = store.headEntries().find(([, head]) => isAncestor(pool, layer, head));
    const childRec = child ? vdiByUuid.get(child[0])?.r : undefined;
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
    owner.set(layer, uuid);
  }
  // vhd-parent of every VDI with storage, and of every base copy
  const setParent = (ref: string, sm: Record<string, string>, parentLayer: string | null) => {
    const want = parentLayer === null ? undefined : owner.get(parentLayer);
    if (sm['vhd-parent'] === want && sm.vdi_type === 'vhd') return;
    db.update('VDI', ref, (x) => {
      const next: Record<string, string> = { ...(x.sm_config as Record<string, string>), vdi_type: 'vhd' };
      if (want === undefined) delete next['vhd-parent'];
      else next['vhd-parent'] = want;
      x.sm_config = next;
    });
  };
  for (const [ref, r] of db.all('VDI')) {
    const sm = r.sm_config as Record<string, string>;
    const uuid = String(r.uuid);
    if (sm[LAYER_KEY] !== undefined)
      setParent(ref, sm, store.hasLayer(sm[LAYER_KEY]) ? store.parentOf(sm[LAYER_KEY]) : null);
    else if (store.hasVdi(uuid)) {
      const head = store.headOf(uuid);
      // a snapshot standing for its own head layer points at that layer's parent
      setParent(ref, sm, owner.get(head) === uuid ? store.parentOf(head) : head);
    }
  }
}

function isAncestor(pool: PoolState, layer: string, of: string): boolean {
  for (let id: string | null = pool.store.parentOf(of); id !== null; id = pool.store.parentOf(id)) {
    if (id === layer) return true;
  }
  return false;
}
