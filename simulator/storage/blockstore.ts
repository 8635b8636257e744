import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { type FileHandle, open, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Disk data is kept in 2 MiB blocks, the VHD block size, so a delta is a set of whole blocks. */
export const BLOCK_SIZE = 2 * 1024 * 1024;
export const ZERO_BLOCK: Buffer = Buffer.alloc(BLOCK_SIZE);

export interface LayerMeta {
  id: string;
  parent: string | null;
  /** block index → slot in the layer's data file */
  blocks: Record<number, number>;
  slots: number;
}

export interface StoreMeta {
  layers: LayerMeta[];
  /** VDI uuid → head layer id */
  heads: Record<string, string>;
}

/**
 * Copy-on-write block storage, like the VHD chains of XCP-ng's file SR: a layer holds the blocks
 * written while it was a leaf, in a sparse data file; a VDI points at a head layer and reads through
 * the parents. A snapshot freezes the head and gives the source a new empty leaf, so unchanged blocks
 * are shared and the blocks changed between two snapshots are exactly the blocks of the layers that
 * separate them (no whole-disk diff).
 *
 * Deleting a VDI costs metadata time, as on XCP-ng: its head is forgotten and the layers nobody reads
 * any more leave the metadata at once (their files are removed in the background). A layer no VDI
 * points at that still has one child stays until `coalesce` — the SR's garbage collector, which the
 * pool runs in the background — merges the child into it, as `vhd-util coalesce` does: the child's
 * blocks are written into the parent (a cost in proportion to the child, i.e. the changes since the
 * snapshot, not to the disk), then the parent takes the child's place.
 *
 * Crash safety (the pool saves this metadata shortly after changes, and a kill can come at any
 * moment): while a merge copies, the child still sits above the parent and hides every block it
 * copies, so a state saved mid-merge reads the same; a layer's file is removed only after the
 * metadata that forgets it was saved (`requestSave`, then `saved`), and files no saved layer names are removed on
 * load.
 */
export class BlockStore {
  private readonly layers = new Map<string, LayerMeta>();
  private readonly heads = new Map<string, string>();
  /** open data files, least recently used first (at most MAX_OPEN_FILES idle ones are kept) */
  private readonly files = new Map<string, OpenFile>();
  /** layer id → the layers whose parent it is */
  private readonly childrenOf = new Map<string, Set<string>>();
  /** layer id → the VDIs whose head it is */
  private readonly headsOf = new Map<string, Set<string>>();
  /** layers no VDI points at with exactly one child: what the garbage collector merges */
  private readonly mergeable = new Set<string>();
  /** layers whose chain shape, heads or size changed since `takeChanges` (some may be gone) */
  private changed = new Set<string>();
  /** reads in progress per layer */
  private readonly reading = new Map<string, Set<Promise<Buffer>>>();
  /** writes in progress per layer (a merge waits for those into the layer it empties) */
  private readonly writing = new Map<string, Set<Promise<void>>>();
  /** per layer being merged away: the blocks written into it since the merge's current pass began */
  private readonly dirty = new Map<string, Set<number>>();
  /** layers forgotten whose data file is still to be removed */
  private readonly doomed = new Set<string>();
  /** the garbage collector's passes run one after the other */
  private gcChain: Promise<unknown> = Promise.resolve();
  /** background work (merges, file removals), awaited by `close` */
  private readonly background = new Set<Promise<unknown>>();
  private stopping = false;
  /** allocated blocks read through readBlock (what an export costs), for the stats */
  blocksRead = 0;
  /**
   * Set when the metadata is persisted: called when layers were forgotten, to have it saved (the
   * pool's debounced save); their files then wait for `saved`. Without it (nothing persisted) the
   * files go at once.
   */
  requestSave: (() => void) | undefined;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  load(meta: StoreMeta): void {
    for (const l of meta.layers) this.layers.set(l.id, l);
    for (const l of meta.layers) if (l.parent !== null) this.addChild(l.parent, l.id);
    for (const [vdi, head] of Object.entries(meta.heads)) this.setHead(vdi, head);
    // files of layers the saved state no longer names: dropped after the last save, before a kill
    for (const f of readdirSync(this.dir)) {
      const id = f.endsWith('.blocks') ? f.slice(0, -'.blocks'.length) : undefined;
      if (id !== undefined && !this.layers.has(id)) rmSync(join(this.dir, f), { force: true });
    }
  }

  dump(): StoreMeta {
    return { layers: [...this.layers.values()], heads: Object.fromEntries(this.heads) };
  }

  private layer(id: string): LayerMeta {
    const l = this.layers.get(id);
    if (!l) throw new Error(`no storage layer ${id}`);
    return l;
  }

  private newLayer(parent: string | null): string {
    const id = randomUUID();
    this.layers.set(id, { id, parent, blocks: {}, slots: 0 });
    this.changed.add(id);
    if (parent !== null) this.addChild(parent, id);
    return id;
  }

  private addChild(parent: string, child: string): void {
    const set = this.childrenOf.get(parent) ?? new Set<string>();
    this.childrenOf.set(parent, set);
    set.add(child);
    this.touch(parent);
  }

  private removeChild(parent: string, child: string): void {
    const set = this.childrenOf.get(parent);
    set?.delete(child);
    if (set?.size === 0) this.childrenOf.delete(parent);
    this.touch(parent);
  }

  /** Notes that a layer's heads or children changed: the chain index and the merge candidates. */
  private touch(id: string): void {
    this.changed.add(id);
    if (this.layers.has(id) && this.headRefs(id) === 0 && this.children(id) === 1) this.mergeable.add(id);
    else this.mergeable.delete(id);
  }

  hasVdi(vdi: string): boolean {
    return this.heads.has(vdi);
  }

  private head(vdi: string): string {
    const h = this.heads.get(vdi);
    if (!h) throw new Error(`no storage for VDI ${vdi}`);
    return h;
  }

  /** Layers from head to root. */
  chain(vdi: string): LayerMeta[] {
    const out: LayerMeta[] = [];
    for (let id: string | null = this.head(vdi); id !== null; id = this.layer(id).parent)
      out.push(this.layer(id));
    return out;
  }

  chainLength(vdi: string): number {
    return this.chain(vdi).length;
  }

  createVdi(vdi: string): void {
    this.setHead(vdi, this.newLayer(null));
  }

  /** `snap` shares `src`'s current content; `src` continues on a new empty leaf if its head was writable. */
  snapshotVdi(src: string, snap: string): void {
    const h = this.head(src);
    if (this.isWritable(h)) this.setHead(src, this.newLayer(h));
    this.setHead(snap, h);
  }

  /** A writable copy-on-write child of `src`'s current content. */
  cloneVdi(src: string, clone: string): void {
    this.snapshotVdi(src, clone);
    this.setHead(clone, this.newLayer(this.head(clone)));
  }

  private children(id: string): number {
    return this.childrenOf.get(id)?.size ?? 0;
  }

  private headRefs(id: string): number {
    return this.headsOf.get(id)?.size ?? 0;
  }

  private setHead(vdi: string, layer: string): void {
    this.deleteHead(vdi);
    this.heads.set(vdi, layer);
    const set = this.headsOf.get(layer) ?? new Set<string>();
    this.headsOf.set(layer, set);
    set.add(vdi);
    this.touch(layer);
  }

  private deleteHead(vdi: string): void {
    const old = this.heads.get(vdi);
    if (old === undefined) return;
    this.heads.delete(vdi);
    const set = this.headsOf.get(old);
    set?.delete(vdi);
    if (set?.size === 0) this.headsOf.delete(old);
    this.touch(old);
  }

  private isWritable(id: string): boolean {
    return this.children(id) === 0 && this.headRefs(id) <= 1;
  }

  /** The layer to write `vdi`'s blocks into, adding a leaf when the head is shared or frozen. */
  private writableHead(vdi: string): LayerMeta {
    const h = this.head(vdi);
    if (this.isWritable(h)) return this.layer(h);
    const leaf = this.newLayer(h);
    this.setHead(vdi, leaf);
    return this.layer(leaf);
  }

  /**
   * Runs `fn` with the layer's data file open. Files stay open between uses, but only the
   * MAX_OPEN_FILES most recently used idle ones: a pool of 10,000 VMs has tens of thousands of
   * layers, more than a process may open.
   */
  private async withFile<T>(id: string, fn: (fh: FileHandle) => Promise<T>): Promise<T> {
    let f = this.files.get(id);
    // (re-inserted below: the most recently used last)
    if (f) this.files.delete(id);
    else {
      // never (re)create the file of a layer already forgotten (a merge racing a deletion)
      if (!this.layers.has(id)) throw new Error(`storage layer ${id} was removed`);
      const path = join(this.dir, `${id}.blocks`);
      // created if missing ('a+'), then reopened 'r+': a file opened to append ignores write positions
      const opened = open(path, 'a+').then(async (fh) => {
        await fh.close();
        return open(path, 'r+');
      });
      f = { users: 0, fh: opened };
      f.fh.catch(() => this.files.get(id) === f && this.files.delete(id));
    }
    this.files.set(id, f);
    f.users++;
    try {
      return await fn(await f.fh);
    } finally {
      f.users--;
      this.closeIdleFiles();
    }
  }

  private closeIdleFiles(): void {
    if (this.files.size <= MAX_OPEN_FILES) return;
    for (const [id, f] of this.files) {
      if (this.files.size <= MAX_OPEN_FILES) return;
      if (f.users > 0) continue;
      this.files.delete(id);
      void f.fh.then((fh) => fh.close()).catch(() => {});
    }
  }

  /** Which layer of the chain holds block `index`, if any. */
  private holder(vdi: string, index: number): LayerMeta | undefined {
    for (let id: string | null = this.head(vdi); id !== null; ) {
      const l = this.layer(id);
      if (l.blocks[index] !== undefined) return l;
      id = l.parent;
    }
    return undefined;
  }

  isAllocated(vdi: string, index: number): boolean {
    return this.holder(vdi, index) !== undefined;
  }

  /** The current content of block `index` (a fresh buffer, or the shared ZERO_BLOCK: do not mutate). */
  async readBlock(vdi: string, index: number): Promise<Buffer> {
    const l = this.holder(vdi, index);
    if (!l) return ZERO_BLOCK;
    this.blocksRead++;
    return this.readLayerBlock(l, index);
  }

  private readLayerBlock(l: LayerMeta, index: number): Promise<Buffer> {
    const read = this.withFile(l.id, async (fh) => {
      const buf = Buffer.allocUnsafe(BLOCK_SIZE);
      const { bytesRead } = await fh.read(buf, 0, BLOCK_SIZE, l.blocks[index] * BLOCK_SIZE);
      if (bytesRead < BLOCK_SIZE) buf.fill(0, bytesRead);
      return buf;
    });
    // a layer merged away while an export reads it is closed only once its reads are done
    const pending = this.reading.get(l.id) ?? new Set<Promise<Buffer>>();
    this.reading.set(l.id, pending);
    pending.add(read);
    const forget = () => pending.delete(read);
    read.then(forget, forget);
    return read;
  }

  /** Replaces block `index` (data: exactly BLOCK_SIZE bytes). */
  async writeBlock(vdi: string, index: number, data: Buffer): Promise<void> {
    if (data.length !== BLOCK_SIZE)
      throw new Error(`block write of ${data.length} bytes, expected ${BLOCK_SIZE}`);
    const l = this.writableHead(vdi);
    await this.writeLayerBlock(l, index, data);
  }

  private writeLayerBlock(l: LayerMeta, index: number, data: Buffer): Promise<void> {
    let slot = l.blocks[index];
    if (slot === undefined) {
      slot = l.slots++;
      l.blocks[index] = slot;
      this.changed.add(l.id); // its size
    }
    this.dirty.get(l.id)?.add(index);
    const at = slot * BLOCK_SIZE;
    const write = this.withFile(l.id, async (fh) => {
      await fh.write(data, 0, BLOCK_SIZE, at);
    });
    const pending = this.writing.get(l.id) ?? new Set<Promise<void>>();
    this.writing.set(l.id, pending);
    pending.add(write);
    const forget = () => {
      pending.delete(write);
      if (pending.size === 0 && this.writing.get(l.id) === pending) this.writing.delete(l.id);
    };
    write.then(forget, forget);
    return write;
  }

  /** Writes `data` at byte `offset`, read-modify-write on the blocks it touches. */
  async writeBytes(vdi: string, offset: number, data: Buffer): Promise<void> {
    let pos = 0;
    while (pos < data.length) {
      const at = offset + pos;
      const index = Math.floor(at / BLOCK_SIZE);
      const within = at % BLOCK_SIZE;
      const n = Math.min(BLOCK_SIZE - within, data.length - pos);
      let block: Buffer;
      if (within === 0 && n === BLOCK_SIZE) block = data.subarray(pos, pos + n);
      else {
        block = Buffer.from(await this.readBlock(vdi, index));
        data.copy(block, within, pos, pos + n);
      }
      await this.writeBlock(vdi, index, block);
      pos += n;
    }
  }

  /** Every block allocated somewhere in the chain, ascending. */
  allocatedBlocks(vdi: string): number[] {
    const set = new Set<number>();
    for (const l of this.chain(vdi)) for (const k of Object.keys(l.blocks)) set.add(Number(k));
    return [...set].sort((a, b) => a - b);
  }

  /**
   * Blocks that may differ between `vdi` and `base`: those held by layers in one chain and not the
   * other (symmetric difference, as XAPI's vhd-tool computes it). Costs the size of those layers.
   */
  deltaBlocks(vdi: string, base: string): number[] {
    const a = this.chain(vdi);
    const b = this.chain(base);
    const inA = new Set(a.map((l) => l.id));
    const inB = new Set(b.map((l) => l.id));
    const set = new Set<number>();
    for (const l of [...a.filter((l) => !inB.has(l.id)), ...b.filter((l) => !inA.has(l.id))]) {
      for (const k of Object.keys(l.blocks)) set.add(Number(k));
    }
    return [...set].sort((x, y) => x - y);
  }

  /** Bytes held by the VDI's own head layer. */
  headBytes(vdi: string): number {
    return this.layer(this.head(vdi)).slots * BLOCK_SIZE;
  }

  /** Bytes of all layers (what the SR holds). */
  totalBytes(vdis: Iterable<string>): number {
    const seen = new Set<string>();
    let n = 0;
    for (const v of vdis) {
      if (!this.heads.has(v)) continue;
      for (const l of this.chain(v)) {
        if (seen.has(l.id)) continue;
        seen.add(l.id);
        n += l.slots * BLOCK_SIZE;
      }
    }
    return n;
  }

  /**
   * Forgets a VDI (metadata time): its head, and each layer that nobody reads any more (no VDI head,
   * no child), walking up from its head. Layers left with one child wait for `coalesce`.
   */
  deleteVdi(vdi: string): void {
    let id: string | null | undefined = this.heads.get(vdi);
    this.deleteHead(vdi);
    while (id != null && this.layers.has(id) && this.headRefs(id) === 0 && this.children(id) === 0) {
      const parent: string | null = this.layer(id).parent;
      this.forget(id);
      id = parent;
    }
  }

  /**
   * The SR's garbage collector: for each layer no VDI points at that has one child, merges the child
   * into it (below), until none is left; returns how many were merged. Passes run one at
   * a time: a call made while one runs waits for it, then makes its own pass.
   */
  coalesce(): Promise<number> {
    const pass = this.gcChain.then(() => this.coalescePass());
    this.gcChain = pass.catch(() => {});
    return this.track(pass);
  }

  private async coalescePass(): Promise<number> {
    let merged = 0;
    for (;;) {
      if (this.stopping) return merged;
      const candidate = this.nextMerge();
      if (!candidate) return merged;
      if (!(await this.mergeChildInto(candidate.parent, candidate.child))) return merged;
      merged++;
    }
  }

  /** A layer no VDI points at with exactly one child, and that child. */
  private nextMerge(): { parent: LayerMeta; child: LayerMeta } | undefined {
    for (const id of this.mergeable) {
      const [child] = this.childrenOf.get(id) ?? [];
      const parent = this.layers.get(id);
      if (child !== undefined && parent) return { parent, child: this.layer(child) };
      this.mergeable.delete(id);
    }
    return undefined;
  }

  /**
   * Writes `child`'s blocks into `parent`, then lets `parent` take `child`'s place (its VDIs and its
   * children) and forgets `child`. Blocks written into `child` meanwhile (a VM's leaf stays writable)
   * are copied again in a next pass; the switch happens in one synchronous step once a pass ends with
   * nothing new written and no write in flight, so no write is lost. False when it gave up (the
   * store closing, the chain changed under it, or a guest that never stops writing).
   */
  private async mergeChildInto(parent: LayerMeta, child: LayerMeta): Promise<boolean> {
    const dirty = new Set<number>();
    this.dirty.set(child.id, dirty);
    const stillValid = () =>
      !this.stopping &&
      this.layers.get(parent.id) === parent &&
      this.layers.get(child.id) === child &&
      child.parent === parent.id &&
      this.headRefs(parent.id) === 0 &&
      this.children(parent.id) === 1;
    try {
      // an export of the deleted VDI still reading the parent must not see blocks change under it
      await Promise.allSettled(this.reading.get(parent.id) ?? []);
      for (let pass = 0; pass < 20; pass++) {
        await Promise.allSettled(this.writing.get(child.id) ?? []);
        // in one synchronous step: what to copy now, and from here on the blocks written meanwhile
        const todo = pass === 0 ? Object.keys(child.blocks).map(Number) : [...dirty];
        dirty.clear();
        for (const index of todo) {
          if (!stillValid()) return false;
          await this.writeLayerBlock(parent, index, await this.readLayerBlock(child, index));
        }
        await Promise.allSettled(this.writing.get(child.id) ?? []);
        if (!stillValid()) return false;
        if (dirty.size === 0 && !this.writing.has(child.id)) {
          // the switch, in one synchronous step: parent now holds everything child did
          for (const vdi of [...(this.headsOf.get(child.id) ?? [])]) this.setHead(vdi, parent.id);
          for (const id of [...(this.childrenOf.get(child.id) ?? [])]) {
            this.layer(id).parent = parent.id;
            this.removeChild(child.id, id);
            this.addChild(parent.id, id);
            this.changed.add(id);
          }
          this.forget(child.id);
          return true;
        }
      }
      return false;
    } catch {
      // a layer removed under the merge (its VDIs deleted meanwhile): nothing to keep
      return false;
    } finally {
      this.dirty.delete(child.id);
    }
  }

  /** Drops a layer from the metadata now; its file goes in the background. */
  private forget(id: string): void {
    const parent = this.layers.get(id)?.parent ?? null;
    this.layers.delete(id);
    if (parent !== null) this.removeChild(parent, id);
    this.childrenOf.delete(id);
    this.headsOf.delete(id);
    this.mergeable.delete(id);
    this.changed.add(id);
    this.doomed.add(id);
    if (this.requestSave) this.requestSave();
    else this.track(new Promise((r) => setImmediate(r)).then(() => this.removeDoomed()));
  }

  /**
   * The metadata as `dump()` gives it now is on disk: the files of the layers it no longer names can
   * go (in the background; `idle` waits for them).
   */
  saved(): Promise<void> {
    return this.track(this.removeDoomed());
  }

  /** Removes the files of forgotten layers. */
  private async removeDoomed(): Promise<void> {
    if (this.doomed.size === 0) return;
    const ids = [...this.doomed];
    this.doomed.clear();
    for (const id of ids) {
      // reads and writes that started before the layer was forgotten finish first
      await Promise.allSettled([...(this.reading.get(id) ?? []), ...(this.writing.get(id) ?? [])]);
      this.reading.delete(id);
      const f = this.files.get(id);
      this.files.delete(id);
      if (f) await (await f.fh.catch(() => undefined))?.close();
      await rm(join(this.dir, `${id}.blocks`), { force: true });
    }
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.background.add(p);
    const done = () => this.background.delete(p);
    p.then(done, done);
    return p;
  }

  /** Waits until no background work (merge, file removal) is left. */
  async idle(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  /** The VDI's head layer. */
  headOf(vdi: string): string {
    return this.head(vdi);
  }

  parentOf(layer: string): string | null {
    return this.layer(layer).parent;
  }

  hasLayer(layer: string): boolean {
    return this.layers.has(layer);
  }

  /** The VDIs whose head `layer` is, in the order they got it. */
  headsOfLayer(layer: string): ReadonlySet<string> {
    return this.headsOf.get(layer) ?? NONE;
  }

  /** The layers whose parent `layer` is. */
  childrenOfLayer(layer: string): ReadonlySet<string> {
    return this.childrenOf.get(layer) ?? NONE;
  }

  /** The root of the layer's tree (a disk, its snapshots and clones, what was merged into them). */
  rootOf(layer: string): string {
    let id = layer;
    for (let p = this.layer(id).parent; p !== null; p = this.layer(p).parent) id = p;
    return id;
  }

  /** Every layer of the tree under `root` (root first). */
  treeOf(root: string): string[] {
    const out = [root];
    for (let i = 0; i < out.length; i++) out.push(...this.childrenOfLayer(out[i]));
    return out;
  }

  /** Every root layer. */
  roots(): string[] {
    return [...this.layers.values()].filter((l) => l.parent === null).map((l) => l.id);
  }

  /**
   * The layers changed since the last call (heads, children, parent or size; some may be gone
   * since): what an index of the chains has to look at again.
   */
  takeChanges(): Set<string> {
    const out = this.changed;
    this.changed = new Set();
    return out;
  }

  /** Bytes held by one layer. */
  layerBytes(layer: string): number {
    return this.layer(layer).slots * BLOCK_SIZE;
  }

  /** Stops the garbage collector (a merge in progress gives up, safely) and closes the files. */
  async close(): Promise<void> {
    this.stopping = true;
    await this.idle();
    const fs = [...this.files.values()];
    this.files.clear();
    for (const f of fs) await (await f.fh).close();
  }
}

interface OpenFile {
  fh: Promise<FileHandle>;
  /** reads and writes using it now */
  users: number;
}

/** Idle data files kept open (the process's limit is often 1,024 or 20,000 descriptors in all). */
const MAX_OPEN_FILES = 256;

const NONE: ReadonlySet<string> = new Set();
