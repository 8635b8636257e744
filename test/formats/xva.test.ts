import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CompressionKind } from '../../formats/compression';
import {
  createXvaStream,
  parseOvaXml,
  readXva,
  tarHeader,
  XvaError,
  type XvaObject,
  xxhashHex,
} from '../../formats/xva';
import { MemDisk, makeTmp, run, writeStream } from './helpers';

let tmp: { dir: string; cleanup(): Promise<void> };
beforeAll(async () => {
  tmp = await makeTmp();
});
afterAll(async () => {
  await tmp.cleanup();
});
const MiB = 1024 * 1024;

const objects: XvaObject[] = [
  {
    class: 'VM',
    id: 'Ref:0',
    snapshot: {
      uuid: '6b3a8a4c-6d1f-4b36-9a4b-0a9b1c2d3e4f',
      name_label: 'web <01> & "friends"',
      power_state: 'Halted',
      memory_static_max: '4294967296',
      VCPUs_max: '2',
      is_a_template: false,
      HVM_boot_params: { order: 'cd' },
      platform: { viridian: 'true', 'device-model': 'qemu-upstream-compat' },
      other_config: { mac_seed: 'ab2c' },
      VBDs: ['Ref:1', 'Ref:2'],
      VIFs: ['Ref:4'],
      snapshots: [],
    },
  },
  {
    class: 'VBD',
    id: 'Ref:1',
    snapshot: {
      VM: 'Ref:0',
      VDI: 'Ref:10',
      device: 'xvda',
      userdevice: '0',
      type: 'Disk',
      mode: 'RW',
      bootable: true,
    },
  },
  {
    class: 'VBD',
    id: 'Ref:2',
    snapshot: {
      VM: 'Ref:0',
      VDI: 'Ref:9',
      device: 'xvdb',
      userdevice: '1',
      type: 'Disk',
      mode: 'RW',
      bootable: false,
    },
  },
  {
    class: 'VIF',
    id: 'Ref:4',
    snapshot: { VM: 'Ref:0', network: 'Ref:5', MAC: '12:34:56:78:9a:bc', device: '0' },
  },
  {
    class: 'network',
    id: 'Ref:5',
    snapshot: { name_label: 'Pool-wide network', bridge: 'xenbr0', PIFs: [] },
  },
  {
    class: 'VDI',
    id: 'Ref:10',
    snapshot: { name_label: 'root', virtual_size: String(7 * MiB + 1536), SR: 'Ref:20', type: 'system' },
  },
  {
    class: 'VDI',
    id: 'Ref:9',
    snapshot: {
      name_label: 'data',
      virtual_size: String(5 * MiB),
      SR: 'Ref:20',
      type: 'user',
      sharable: false,
      ratio: 0.5,
    },
  },
  {
    class: 'SR',
    id: 'Ref:20',
    snapshot: { name_label: 'Local storage', content_type: 'user', VDIs: ['Ref:10', 'Ref:9'] },
  },
];

function disks() {
  const root = new MemDisk(7 * MiB + 1536);
  root.randomBlock(0);
  root.write(2 * 2 * MiB + MiB + 100, randomBytes(5000)); // block 2: only its second half has data
  root.randomBlock(3);
  const data = Buffer.alloc(5 * MiB);
  randomBytes(MiB).copy(data, 0);
  randomBytes(1000).copy(data, 3 * MiB + 5);
  return { root, data };
}

async function readBack(file: string) {
  const out = new Map<string, Buffer>();
  let header: any;
  const names: string[] = [];
  for await (const item of readXva(createReadStream(file), { file })) {
    if (item.type === 'header') {
      header = item;
      for (const vdi of item.records.vdis) out.set(vdi.id, Buffer.alloc(Number(vdi.snapshot.virtual_size)));
    } else {
      names.push(`${item.ref}/${item.index}`);
      item.data.copy(out.get(item.ref)!, item.offset);
    }
  }
  return { header, out, names };
}

describe('XVA', () => {
  for (const compression of ['none', 'gzip', 'zstd'] as CompressionKind[]) {
    it(`${compression}: written then read back to the same records and bytes`, async () => {
      const { root, data } = disks();
      const file = path.join(tmp.dir, `vm-${compression}.xva`);
      await writeStream(
        createXvaStream({
          objects,
          compression,
          disks: [
            {
              ref: 'Ref:9',
              stream: Readable.from([data.subarray(0, 100), data.subarray(100)]),
              size: data.length,
            },
            { ref: 'Ref:10', source: root },
          ],
        }),
        file,
      );
      const { header, out, names } = await readBack(file);
      expect(header.compression).toBe(compression);
      expect(header.objects).toEqual(objects.map((o) => ({ ...o, snapshot: { ...o.snapshot } })));
      expect(header.version.export_vsn).toBe('2');
      expect(header.records.vms.map((o: XvaObject) => o.id)).toEqual(['Ref:0']);
      expect(header.records.networks.length).toBe(1);
      expect(out.get('Ref:10')!.equals(root.read(0, root.size))).toBe(true);
      expect(out.get('Ref:9')!.equals(data)).toBe(true);
      // string order of the refs: Ref:10 before Ref:9; zero chunks skipped but first and last kept
      expect(names).toEqual([
        'Ref:10/0',
        'Ref:10/1',
        'Ref:10/5',
        'Ref:10/6',
        'Ref:10/7',
        'Ref:9/0',
        'Ref:9/3',
        'Ref:9/4',
      ]);
      // an independent reader (GNU tar) sees the same members in the same order
      const cat = compression === 'none' ? 'cat' : compression === 'gzip' ? 'gzip -dc' : 'zstd -dc';
      const { stdout } = await run('sh', ['-c', `${cat} '${file}' | tar -tf -`]);
      const listed = stdout.trim().split('\n');
      expect(listed[0]).toBe('ova.xml');
      expect(listed[1]).toBe('Ref:10/00000000');
      expect(listed[2]).toBe('Ref:10/00000000.xxhash');
      expect(listed.length).toBe(1 + 2 * names.length);
      if (compression === 'none') {
        // XO's validity check: size multiple of 512 and the last 1024 bytes zero
        const bytes = await readFile(file);
        expect(bytes.length % 512).toBe(0);
        expect(bytes.subarray(bytes.length - 1024).every((b) => b === 0)).toBe(true);
        // the checksum member is XXH64 in 16 uppercase hex digits
        const { stdout: sum } = await run('sh', ['-c', `tar -xOf '${file}' Ref:9/00000000.xxhash`]);
        expect(sum).toBe(xxhashHex(data.subarray(0, MiB)));
        expect(sum).toMatch(/^[0-9A-F]{16}$/);
      }
    });
  }

  it('ova.xml is compact XML-RPC as XAPI writes it (no prolog, ints bare)', async () => {
    const file = path.join(tmp.dir, 'meta-only.xva');
    await writeStream(createXvaStream({ objects: objects.slice(0, 1), disks: [] }), file);
    const { stdout } = await run('tar', ['-xOf', file, 'ova.xml']);
    expect(stdout.startsWith('<value><struct><member><name>version</name>')).toBe(true);
    expect(stdout).toContain('<member><name>xapi_major</name><value>1</value></member>');
    expect(stdout).toContain('<value>web &lt;01&gt; &amp; &quot;friends&quot;</value>');
    expect(stdout).toContain('<value><boolean>0</boolean></value>');
    expect(stdout).not.toMatch(/>\s+</);
    expect(parseOvaXml(stdout).objects[0].snapshot.name_label).toBe('web <01> & "friends"');
  });

  it('a tampered chunk is reported by name', async () => {
    const { root, data } = disks();
    const file = path.join(tmp.dir, 'tampered.xva');
    await writeStream(
      createXvaStream({
        objects,
        disks: [
          { ref: 'Ref:10', source: root },
          { ref: 'Ref:9', stream: Readable.from([data]), size: data.length },
        ],
      }),
      file,
    );
    // find the member Ref:10/00000005 by walking the tar headers, flip one byte of its data
    const fh = await open(file, 'r+');
    const size = (await stat(file)).size;
    let off = 0;
    let found = false;
    while (off < size) {
      const h = Buffer.alloc(512);
      await fh.read(h, 0, 512, off);
      const name = h.toString('latin1', 0, 100).replace(/\0.*$/, '');
      if (!name) break;
      const len = Number.parseInt(h.toString('latin1', 124, 136), 8);
      if (name === 'Ref:10/00000005') {
        const b = Buffer.alloc(1);
        await fh.read(b, 0, 1, off + 512 + 777);
        b[0] ^= 0x01;
        await fh.write(b, 0, 1, off + 512 + 777);
        found = true;
        break;
      }
      off += 512 + Math.ceil(len / 512) * 512;
    }
    await fh.close();
    expect(found).toBe(true);
    const err = await readBack(file).then(
      () => undefined,
      (e) => e,
    );
    expect(err).toBeInstanceOf(XvaError);
    expect(err.code).toBe('CHECKSUM_MISMATCH');
    expect(err.member).toBe('Ref:10/00000005');
    expect(err.file).toBe(file);
    expect(err.message).toContain('Ref:10/00000005');
  });

  it('malformed archives: ova.xml not first, truncated, not a tar', async () => {
    const notFirst = path.join(tmp.dir, 'notfirst.xva');
    const body = Buffer.from('hello');
    await writeFile(
      notFirst,
      Buffer.concat([tarHeader('hello.txt', 5), body, Buffer.alloc(507), Buffer.alloc(1024)]),
    );
    await expect(readBack(notFirst)).rejects.toMatchObject({ code: 'NO_OVA_XML', file: notFirst });
    const { root } = disks();
    const full = path.join(tmp.dir, 'full.xva');
    await writeStream(createXvaStream({ objects, disks: [{ ref: 'Ref:10', source: root }] }), full);
    const bytes = await readFile(full);
    const cut = path.join(tmp.dir, 'cut.xva');
    await writeFile(cut, bytes.subarray(0, bytes.length - 600_000));
    await expect(readBack(cut)).rejects.toBeInstanceOf(XvaError);
    const junk = path.join(tmp.dir, 'junk.xva');
    await writeFile(junk, randomBytes(4096));
    await expect(readBack(junk)).rejects.toBeInstanceOf(XvaError);
  });
});

describe('XVA reader lifecycle', () => {
  it('a consumer that stops after the header releases the input (no hang)', async () => {
    const disk = new MemDisk(4 * MiB);
    disk.randomBlock(0);
    disk.randomBlock(1);
    for (const compression of ['none', 'zstd'] as CompressionKind[]) {
      const file = path.join(tmp.dir, `early-${compression}.xva`);
      await writeStream(
        createXvaStream({ objects, compression, disks: [{ ref: 'Ref:10', source: disk }] }),
        file,
      );
      const input = createReadStream(file);
      for await (const item of readXva(input, { file })) {
        expect(item.type).toBe('header');
        break;
      }
      await new Promise((r) => setImmediate(r));
      expect(input.destroyed).toBe(true);
    }
  });
});
