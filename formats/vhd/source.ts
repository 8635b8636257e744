/** What the VHD and XVA writers consume: a sparse disk described block by block. */
export interface BlockSource {
  /** Virtual size in bytes (need not be a multiple of 2 MiB). */
  size: number;
  /** Sorted indexes of the blocks present. */
  blocks: readonly number[];
  /** The block's 2 MiB (zero-padded past the end of the disk). */
  readBlock(index: number): Promise<Buffer>;
}

export interface VhdIdentity {
  uuid?: string;
  timestamp?: Date;
}

/** name = parent file name, e.g. "20261126T010203Z.vhd" (relative to the child's folder). */
export interface ParentRef {
  uuid: string;
  name: string;
  timestamp: Date;
}
