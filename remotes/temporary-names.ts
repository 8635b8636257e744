// Names of files that are being written: hidden (leading dot, which XO's listings skip) and in the
// same directory as the final file, so the final rename never crosses a filesystem.
import { randomBytes } from 'node:crypto';

const OURS = /^\..+\.tmp-[0-9a-f]{12}$/;
// Xen Orchestra's @xen-orchestra/fs temp names: `.<epoch ms>.<name>`. Merge state files
// (`.<ts>.vhd.merge.json`) do not match: a `<ts>` has a `T` after 8 digits.
const XEN_ORCHESTRA = /^\.\d{10,}\.[^/]+$/;

/** `20260115T020000Z.vhd` → `.20260115T020000Z.vhd.tmp-1a2b3c4d5e6f` */
export function temporaryNameFor(basename: string): string {
  return `.${basename}.tmp-${randomBytes(6).toString('hex')}`;
}

/** A leftover of an interrupted write, by us or by Xen Orchestra. */
export function isTemporaryName(basename: string): boolean {
  return OURS.test(basename) || XEN_ORCHESTRA.test(basename);
}
