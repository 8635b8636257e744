// The independent judge of every VHD chain the tests see: rebuilds the raw disk a chain describes
// with qemu-img alone (Debian qemu-utils), sharing no code with formats/.
//
// qemu-img's vpc driver ignores parent links, so each file is read on its own: `qemu-img map` says
// which ranges the file holds, `qemu-img convert` gives its bytes, and the layers are overlaid from
// the base to the tip. The virtual size is the footer's current size (force_size_calc=current_size),
// as XAPI reads it; without that option qemu-img rounds the size to the CHS geometry.
//
// Usage as a program: npx tsx test/tools/vhd-chain-judge.ts OUT.raw BASE.vhd [DELTA.vhd ... TIP.vhd]

import { execFile } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const CHUNK = 8 << 20;

interface Extent {
  start: number;
  length: number;
  data: boolean;
}

async function qemuImg(args: string[]): Promise<string> {
  try {
    const { stdout } = await exec('qemu-img', args, { maxBuffer: 1 << 28 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(
      `vhd-chain-judge: qemu-img ${args.join(' ')} failed: ${(err.stderr ?? err.message).trim()}`,
    );
  }
}

/** qemu-img's --image-opts for one VHD file read at its footer's current size. */
const imageOpts = (file: string) => `driver=vpc,force_size_calc=current_size,file.filename=${file}`;

/** Writes to `out` the raw disk the chain `layers` (base first, tip last) describes. */
export async function judgeChain(out: string, layers: string[]): Promise<void> {
  if (layers.length === 0) throw new Error('vhd-chain-judge: no VHD file given');
  const sizes = new Set<number>();
  for (const file of layers) {
    const info = JSON.parse(await qemuImg(['info', '--output=json', '--image-opts', imageOpts(file)]));
    sizes.add(info['virtual-size']);
  }
  if (sizes.size !== 1)
    throw new Error(`vhd-chain-judge: layers disagree on the virtual size: ${[...sizes]}`);
  const [size] = sizes;
  const tmp = await mkdtemp(path.join(tmpdir(), 'xcpb-judge-'));
  const dst = await open(out, 'w');
  try {
    await dst.truncate(size);
    const buf = Buffer.allocUnsafe(CHUNK);
    for (const [i, file] of layers.entries()) {
      const raw = path.join(tmp, `layer${i}.raw`);
      await qemuImg(['convert', '--image-opts', imageOpts(file), '-O', 'raw', raw]);
      const extents: Extent[] = JSON.parse(
        await qemuImg(['map', '--output=json', '--image-opts', imageOpts(file)]),
      );
      const src = await open(raw, 'r');
      try {
        for (const e of extents) {
          if (!e.data) continue;
          for (let pos = e.start, end = e.start + e.length; pos < end; ) {
            const { bytesRead } = await src.read(buf, 0, Math.min(CHUNK, end - pos), pos);
            if (bytesRead === 0) throw new Error(`vhd-chain-judge: ${file}: short read at ${pos}`);
            await dst.write(buf, 0, bytesRead, pos);
            pos += bytesRead;
          }
        }
      } finally {
        await src.close();
      }
      await rm(raw, { force: true });
    }
  } finally {
    await dst.close();
    await rm(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const [out, ...layers] = process.argv.slice(2);
  if (!out || layers.length === 0) {
    console.error('usage: vhd-chain-judge OUT.raw BASE.vhd [DELTA.vhd ... TIP.vhd]');
    process.exit(2);
  }
  judgeChain(out, layers).catch((e) => {
    console.error(e.message);
    process.exit(1);
  });
}
