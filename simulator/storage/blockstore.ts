import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
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
 * separate them (no whole-disk diff). Coalescing merges a layer no VDI points at into its only child.
 */
export class BlockStore {
  private readonly layers = new Map<string, LayerMeta>();
  private readonly heads = new Map<string, string>();
  private readonly files = new Map<string, Promise<FileHandle>>();
  /** layer id → number of layers whose parent it is */
  private readonly childCount = new Map<string, number>();
  /** layer id → number of VDIs whose head it is */
  private readonly headCount = new Map<string, number>();
  /** reads in progress per layer */
  private readonly reading = new Map<string, Set<Promise<Buffer>>>();
  /** allocated blocks read through readBlock (what an export costs), for the stats */
  blocksRead = 0;

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  load(meta: StoreMeta): void {
    for (const l of meta.layers) {
      this.layers.set(l.id, l);
      if (l.parent !== null) bump(this.childCount, l.parent, 1);
    }
    for (const [vdi, head] of Object.entries(meta.heads)) this.setHead(vdi, head);
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
    if (parent !== null) bump(this.childCount, parent, 1);
    return id;
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
    return this.childCount.get(id) ?? 0;
  }

  private headRefs(id: string): number {
    return this.headCount.get(id) ?? 0;
  }

  private setHead(vdi: string, layer: string): void {
    const old = this.heads.get(vdi);
    if (old !== undefined) bump(this.headCount, old, -1);
    this.heads.set(vdi, layer);
    bump(this.headCount, layer, 1);
  }

  private deleteHead(vdi: string): void {
    const old = this.heads.get(vdi);
    if (old === undefined) return;
    bump(this.headCount, old, -1);
    this.heads.delete(vdi);
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

  private file(id: string): Promise<FileHandle> {
    let f = this.files.get(id);
    if (!f) {
      f = open(join(this.dir, `${id}.blocks`), 'a+').then(async (fh) => {
        await fh.close();
        return open(join(this.dir, `${id}.blocks`), 'r+');
      });
      this.files.set(id, f);
    }
    return f;
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
    const read = (async () => {
      const fh = await this.file(l.id);
      const buf = Buffer.allocUnsafe(BLOCK_SIZE);
      const { bytesRead } = await fh.read(buf, 0, BLOCK_SIZE, l.blocks[index] * BLOCK_SIZE);
      if (bytesRead < BLOCK_SIZE) buf.fill(0, bytesRead);
      return buf;
    })();
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

  private async writeLayerBlock(l: LayerMeta, index: number, data: Buffer): Promise<void> {
    let slot = l.blocks[index];
    if (slot === undefined) {
      slot = l.slots++;
      l.blocks[index] = slot;
    }
    const fh = await this.file(l.id);
    await fh.write(data, 0, BLOCK_SIZE, slot * BLOCK_SIZE);
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

  async deleteVdi(vdi: string, autoCoalesce: boolean): Promise<void> {
    this.deleteHead(vdi);
    await this.collect();
    if (autoCoalesce) await this.coalesce();
  }

  /** Deletes layers nobody reads (no VDI head, no child). */
  private async collect(): Promise<void> {
    for (let again = true; again; ) {
      again = false;
      for (const l of [...this.layers.values()]) {
        if (this.headRefs(l.id) === 0 && this.children(l.id) === 0) {
          await this.dropLayer(l.id);
          again = true;
        }
      }
    }
  }

  /** Merges each layer that no VDI points at into its only child; returns how many were merged. */
  async coalesce(): Promise<number> {
    let merged = 0;
    for (let again = true; again; ) {
      again = false;
      for (const l of [...this.layers.values()]) {
        if (this.headRefs(l.id) !== 0 || this.children(l.id) !== 1) continue;
        const child = [...this.layers.values()].find((c) => c.parent === l.id)!;
        for (const k of Object.keys(l.blocks)) {
          const index = Number(k);
          if (child.blocks[index] === undefined)
            await this.writeLayerBlock(child, index, await this.readLayerBlock(l, index));
        }
        bump(this.childCount, l.id, -1);
        child.parent = l.parent;
        if (l.parent !== null) bump(this.childCount, l.parent, 1);
        await this.dropLayer(l.id);
        merged++;
        again = true;
      }
    }
    return merged;
  }

  private async dropLayer(id: string): Promise<void> {
    const parent = this.layers.get(id)?.parent ?? null;
    if (parent !== null) bump(this.childCount, parent, -1);
    this.layers.delete(id);
    this.childCount.delete(id);
    this.headCount.delete(id);
    const f = this.files.get(id);
    this.files.delete(id);
    await Promise.allSettled(this.reading.get(id) ?? []);
    this.reading.delete(id);
    if (f) await (await f).close();
    await rm(join(this.dir, `${id}.blocks`), { force: true });
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

  /** VDI uuid → head layer, for every VDI with storage. */
  headEntries(): [string, string][] {
    return [...this.heads];
  }

  /** Layers no VDI points at that still have children: what XCP-ng shows as hidden "base copy" VDIs. */
  unownedParents(): string[] {
    return [...this.layers.keys()].filter((id) => this.headRefs(id) === 0 && this.children(id) > 0);
  }

  /** Bytes held by one layer. */
  layerBytes(layer: string): number {
    return this.layer(layer).slots * BLOCK_SIZE;
  }

  async close(): Promise<void> {
    const fs = [...this.files.values()];
    this.files.clear();
    for (const f of fs) await (await f).close();
  }
}

function bump(counts: Map<string, number>, key: string, by: number): void {
  const n = (counts.get(key) ?? 0) + by;
  if (n <= 0) counts.delete(key);
  else counts.set(key, n);
}
