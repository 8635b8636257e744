// How large an XVA can be, known before it is written: what a full backup's progress bar takes as
// its total, the export stream having no length.
import { TAR_BLOCK } from './tar';
import { XVA_CHUNK_SIZE } from './writer';

export interface XvaDiskSize {
  /** the disk's size */
  virtualSize: number;
  /** at most this many bytes of it hold data (allocated); the rest is skipped as zeros */
  dataBytes: number;
}

/**
 * The most bytes an uncompressed XVA of these disks holds, ova.xml aside (a few KiB): every chunk of
 * data (1 MiB) plus the first and last chunks (always written), each as a tar member followed by
 * its checksum member (three tar blocks: two headers and the padded checksum), then the end blocks.
 */
export function xvaSizeBound(disks: readonly XvaDiskSize[]): number {
  let bytes = 2 * TAR_BLOCK;
  for (const d of disks) {
    const data = Math.min(d.virtualSize, d.dataBytes + 2 * XVA_CHUNK_SIZE);
    bytes += data + Math.ceil(data / XVA_CHUNK_SIZE) * 3 * TAR_BLOCK;
  }
  return bytes;
}
