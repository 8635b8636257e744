// A VHD stream with a new identity: what a backup writes from XAPI's export. XAPI gives each export
// a random UUID and names a parent on its SR; on a remote the file must carry the snapshot VDI's
// UUID and point at the previous backup file (xo-backups.md §5.2), so the chain links by UUID.
import type { Readable } from 'node:stream';
import { VhdError } from './errors';
import type { ParentRef } from './source';
import { readVhdStream } from './stream-reader';
import { createVhdStream } from './writer';

export async function reidentifyVhdStream(
  input: Readable,
  identity: { uuid: string; timestamp?: Date; parent?: ParentRef },
  name = 'export',
): Promise<{ stream: Readable; blocks: number; size: number }> {
  const items = readVhdStream(input, name);
  const first = await items.next();
  if (first.done || first.value.type !== 'header')
    throw new VhdError('TRUNCATED', `${name}: no VHD header`, name);
  const { footer, blocks } = first.value;
  let expected = 0;
  const stream = createVhdStream(
    {
      size: footer.currentSize,
      blocks,
      async readBlock(index) {
        const next = await items.next();
        if (
          next.done ||
          next.value.type !== 'block' ||
          next.value.index !== index ||
          blocks[expected] !== index
        ) {
          throw new VhdError('BAD_FIELD', `${name}: expected block ${index} in order`, name);
        }
        expected++;
        return next.value.data;
      },
    },
    identity,
  );
  return { stream, blocks: blocks.length, size: footer.currentSize };
}
