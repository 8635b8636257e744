// LVM2: a physical volume in an MBR partition, made by LVM's own tools (pvcreate, vgcreate, then
// vgcfgrestore of logical volumes, since lvcreate needs device-mapper, which these machines lack),
// ext4 filesystems written where `lvs` says the extents are; then read back through our reader.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openRawDevice } from '../../formats/disk/device';
import { discoverVolumes, openFilesystem } from '../../formats/disk/volumes';
import { walk } from '../../formats/disk/walk';
import { makeTmp } from '../formats/helpers';
import { ext4Image, makeTree, placeAt, sh, sha256, sparseFile } from './images';

const MiB = 1 << 20;
let tmp: Awaited<ReturnType<typeof makeTmp>>;
beforeAll(async () => {
  tmp = await makeTmp('xcpb-lvm-');
});
afterAll(() => tmp?.cleanup());

const lv = (name: string, n: number, segments: string) => `
		${name} {
			id = "aaaaaa-bbbb-cccc-dddd-eeee-ffff-00000${n}"
			status = ["READ", "WRITE", "VISIBLE"]
			flags = []
			segment_count = ${segments.split('segment').length - 1}
${segments}
		}`;
const seg = (
  n: number,
  start: number,
  count: number,
  pe: number,
  stripes = `"pv0", ${pe}`,
  stripeCount = 1,
) => `
			segment${n} {
				start_extent = ${start}
				extent_count = ${count}
				type = "striped"
				stripe_count = ${stripeCount}
				${stripeCount > 1 ? 'stripe_size = 128' : ''}
				stripes = [${stripes}]
			}`;

it('reads linear logical volumes (one and two segments) and names a striped one as unsupported', async () => {
  const disk = path.join(tmp.dir, 'lvm.img');
  await sparseFile(disk, 128 * MiB);
  await sh('bash', ['-c', `printf 'label: dos\\n1MiB,,8e\\n' | sfdisk -q "$0"`, disk]);
  const loop = (await sh('losetup', ['-f', '--show', '-o', String(MiB), disk])).stdout.trim();
  try {
    const dev = ['--devices', loop];
    await sh('pvcreate', ['-y', ...dev, loop]);
    await sh('vgcreate', ['-s', '4M', ...dev, 'vgtest', loop]);
    const meta = path.join(tmp.dir, 'vg.txt');
    await sh('vgcfgbackup', [...dev, '-f', meta, 'vgtest']);
    const text = await readFile(meta, 'utf8');
    const lvs = `\n\tlogical_volumes {${lv('root', 1, seg(1, 0, 5, 0))}${lv('data', 2, seg(1, 0, 2, 10) + seg(2, 2, 2, 6))}${lv('fast', 3, seg(1, 0, 2, 0, '"pv0", 14, "pv0", 20', 2))}\n\t}\n`;
    const end = text.lastIndexOf('}');
    await writeFile(meta, text.slice(0, end) + lvs + text.slice(end));
    await sh('vgcfgrestore', [...dev, '-f', meta, 'vgtest']).catch((e) => {
      // vgcfgrestore warns that device-mapper is missing but writes the metadata
      if (!/Restored volume group/.test(String(e.stdout) + String(e.stderr))) throw e;
    });
    const ranges = (await sh('lvs', [...dev, '--noheadings', '-o', 'lv_name,seg_pe_ranges', 'vgtest']))
      .stdout;
    expect(ranges).toMatch(/data\s+\S+:10-11/);
  } finally {
    await sh('losetup', ['-d', loop]);
  }
  // ext4 written where the extents are: PV at 1 MiB, pe_start 1 MiB, 4 MiB extents
  const pe = (n: number) => MiB + MiB + n * 4 * MiB;
  const rootSrc = path.join(tmp.dir, 'root');
  await makeTree(rootSrc, { 'etc/fstab': '/dev/vgtest/root / ext4\n' });
  await ext4Image(path.join(tmp.dir, 'root.img'), 20 * MiB, rootSrc);
  await placeAt(disk, path.join(tmp.dir, 'root.img'), pe(0));
  const dataSrc = path.join(tmp.dir, 'data');
  const payload = Buffer.from(Array.from({ length: 9 * MiB }, (_, i) => (i * 31 + (i >> 12)) & 0xff));
  await makeTree(dataSrc, { 'payload.bin': payload });
  await ext4Image(path.join(tmp.dir, 'data.img'), 16 * MiB, dataSrc);
  const img = await readFile(path.join(tmp.dir, 'data.img'));
  // the LV's first 8 MiB live at extents 10-11, the next 8 MiB at extents 6-7
  await writeFile(path.join(tmp.dir, 'data-a.img'), img.subarray(0, 8 * MiB));
  await writeFile(path.join(tmp.dir, 'data-b.img'), img.subarray(8 * MiB));
  await placeAt(disk, path.join(tmp.dir, 'data-a.img'), pe(10));
  await placeAt(disk, path.join(tmp.dir, 'data-b.img'), pe(6));

  const dev = await openRawDevice(disk);
  try {
    const { volumes } = await discoverVolumes(dev);
    expect(volumes.map((v) => [v.id, v.fsType ?? null, v.kind])).toEqual([
      ['1', 'lvm2-pv', 'Linux LVM'],
      ['vgtest/root', 'ext4', 'linear'],
      ['vgtest/data', 'ext4', 'linear'],
      ['vgtest/fast', null, 'striped (2 stripes)'],
    ]);
    expect(volumes[3].problem).toBe(
      'logical volume vgtest/fast is striped (2 stripes): only linear volumes are supported',
    );
    const read = async (id: string, p: string) => {
      const fs = await openFilesystem(volumes.find((v) => v.id === id)!);
      try {
        const chunks: Buffer[] = [];
        for await (const c of await fs.openRead(p)) chunks.push(c as Buffer);
        const names: string[] = [];
        for await (const item of walk(fs, ['/'])) names.push(item.name);
        return { data: Buffer.concat(chunks), names };
      } finally {
        await fs.close();
      }
    };
    expect((await read('vgtest/root', '/etc/fstab')).data.toString()).toBe('/dev/vgtest/root / ext4\n');
    const data = await read('vgtest/data', '/payload.bin');
    expect(sha256(data.data)).toBe(sha256(payload));
    await expect(openFilesystem(volumes[3])).rejects.toThrow('striped (2 stripes)');
  } finally {
    await dev.close();
  }
});
