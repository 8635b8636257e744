// Backups as Xen Orchestra writes them (xo-backups.md §4): uuid job ids, XO's metadata fields and
// ref-keyed records, `isVhdDifferencing["<ref>.vhd"]`, VHDs with parent locators, XAPI's own XVA,
// `cache.json.gz`, a `<uuid>.lock` folder and the merge queue. They are listed (with a broken and a
// partial entry reported as such) and restored byte for byte onto a pool that never saw the VM; the
// CLI lists them and restores one.
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listBackupRows } from '../../cli/backups';
import { MAIN_QUEUE } from '../../core/task-queues';
import { type BlockSource, createVhdStream, VHD_BLOCK_SIZE } from '../../formats/vhd';
import type { RestoreVmResult } from '../../workflows/restore-vm';
import { type BackupStack, PASSWORD_ENV, readAll, startBackupStack } from '../helpers/backup-stack';
import { runXcpb } from '../helpers/cli';
import { temporalAddress } from '../helpers/temporal';

let stack: BackupStack;
const vmUuid = randomUUID();
const jobId = randomUUID();
const scheduleId = randomUUID();
const liveVdi = randomUUID();
const snap = [randomUUID(), randomUUID()];
const ts = [
  '20260110T020000Z',
  '20260111T020000Z',
  '20260112T020000Z',
  '20260113T020000Z',
  '20260114T020000Z',
];
const SIZE = 6 * 1024 * 1024 + 3 * 512;

/** The disk at ts[0] and at ts[1], as raw bytes. */
const disk0 = Buffer.alloc(SIZE);
let disk1: Buffer;

function source(raw: Buffer, blocks: number[]): BlockSource {
  return {
    size: SIZE,
    blocks,
    readBlock: async (i) => {
      const out = Buffer.alloc(VHD_BLOCK_SIZE);
      raw.copy(out, 0, i * VHD_BLOCK_SIZE, Math.min(raw.length, (i + 1) * VHD_BLOCK_SIZE));
      return out;
    },
  };
}

function deltaMetadata(i: number, vdiRef: string, differencing: boolean, vhd: string) {
  return {
    version: '2.0.0',
    mode: 'delta',
    jobId,
    scheduleId,
    timestamp: Date.parse(`${ts[i].slice(0, 4)}-${ts[i].slice(4, 6)}-${ts[i].slice(6, 8)}T02:00:00Z`),
    vm: {
      $type: 'VM',
      uuid: vmUuid,
      name_label: 'xo-made',
      name_description: 'backed up by Xen Orchestra',
      power_state: 'Running',
      tags: ['from-xo'],
      other_config: { 'xo:backup:job': jobId, base_template_name: 'Debian Bookworm 12' },
      memory_static_max: '1073741824',
      memory_dynamic_max: '1073741824',
      memory_dynamic_min: '1073741824',
      memory_static_min: '536870912',
      VCPUs_max: '2',
      VCPUs_at_startup: '2',
      HVM_boot_params: { order: 'dc' },
      platform: { viridian: 'false' },
    },
    vmSnapshot: { uuid: randomUUID(), power_state: 'Halted', suspend_VDI: 'OpaqueRef:NULL' },
    vbds: {
      [`OpaqueRef:${randomUUID()}`]: {
        VDI: vdiRef,
        userdevice: '0',
        bootable: true,
        mode: 'RW',
        type: 'Disk',
      },
    },
    vdis: {
      [vdiRef]: {
        uuid: snap[i],
        name_label: 'xo disk',
        name_description: '',
        virtual_size: String(SIZE),
        type: 'user',
        other_config: {
          'xo:backup:vm': vmUuid,
          ...(differencing ? { 'xo:base_delta_vdi': snap[i - 1] } : {}),
        },
        $snapshot_of$uuid: liveVdi,
        $SR$uuid: randomUUID(),
      },
    },
    vhds: { [vdiRef]: vhd },
    vifs: {
      [`OpaqueRef:${randomUUID()}`]: {
        device: '0',
        MAC: 'b6:7a:11:22:33:44',
        MTU: '1500',
        $network$uuid: randomUUID(),
        $network$name_label: 'Pool-wide network associated with eth0',
        $network$VLAN: '-1',
      },
    },
    vtpms: [],
    isVhdDifferencing: { [`${vdiRef}.vhd`]: differencing },
    includeNonNbdQcow2Fix: true,
    size: 4 * VHD_BLOCK_SIZE,
    tags: [`daily=${ts[i].slice(0, 4)}-${ts[i].slice(4, 6)}-${ts[i].slice(6, 8)}`],
  };
}

async function writeXoRemote(root: string): Promise<void> {
  const vmDir = path.join(root, 'xo-vm-backups', vmUuid);
  const chainDir = path.join(vmDir, 'vdis', jobId, liveVdi);
  await mkdir(chainDir, { recursive: true });
  await mkdir(path.join(root, 'xo-vm-backups', `${vmUuid}.lock`), { recursive: true });
  await mkdir(path.join(root, 'xo-vm-backups', '.queue', 'clean-vm'), { recursive: true });
  await writeFile(path.join(root, 'xo-vm-backups', '.queue', 'clean-vm', `${ts[1]}-abc`), vmUuid);
  await writeFile(path.join(root, 'encryption.json'), JSON.stringify({ algorithm: 'none' }));
  // ts[0]: key disk, blocks 0, 2 and 3 (the last one partial: the disk is not a multiple of 2 MiB)
  randomBytes(VHD_BLOCK_SIZE).copy(disk0, 0);
  randomBytes(SIZE - 2 * VHD_BLOCK_SIZE).copy(disk0, 2 * VHD_BLOCK_SIZE);
  const t0 = new Date('2026-01-10T02:00:00Z');
  await pipeline(
    createVhdStream(source(disk0, [0, 2, 3]), { uuid: snap[0], timestamp: t0 }),
    createWriteStream(path.join(chainDir, `${ts[0]}.vhd`)),
  );
  // ts[1]: a delta over it: block 1 written, block 0 rewritten
  disk1 = Buffer.from(disk0);
  randomBytes(2 * VHD_BLOCK_SIZE).copy(disk1, 0);
  await pipeline(
    createVhdStream(source(disk1, [0, 1]), {
      uuid: snap[1],
      timestamp: new Date('2026-01-11T02:00:00Z'),
      parent: { uuid: snap[0], name: `${ts[0]}.vhd`, timestamp: t0 },
    }),
    createWriteStream(path.join(chainDir, `${ts[1]}.vhd`)),
  );
  const ref = (i: number) => `OpaqueRef:${snap[i]}-ref`;
  for (const i of [0, 1]) {
    const meta = deltaMetadata(i, ref(i), i === 1, `vdis/${jobId}/${liveVdi}/${ts[i]}.vhd`);
    await writeFile(path.join(vmDir, `${ts[i]}.json`), JSON.stringify(meta));
  }
  // ts[2]: broken (its VHD is gone); ts[3]: partial (a VHD, no metadata)
  await writeFile(
    path.join(vmDir, `${ts[2]}.json`),
    JSON.stringify(deltaMetadata(1, 'OpaqueRef:gone', true, `vdis/${jobId}/${liveVdi}/${ts[2]}.vhd`)),
  );
  await pipeline(
    createVhdStream(source(disk1, [1]), {
      uuid: randomUUID(),
      parent: { uuid: snap[1], name: `${ts[1]}.vhd`, timestamp: t0 },
    }),
    createWriteStream(path.join(chainDir, `${ts[3]}.vhd`)),
  );
  // ts[4]: a full backup: XAPI's own XVA of a VM, as XO stores it
  const xapi = await stack.xapi();
  try {
    const [vmRef] = await xapi.call<string[]>('VM.get_by_name_label', 'halted');
    const { body } = await xapi.getResource('/export', { ref: vmRef, use_compression: 'zstd' });
    await pipeline(body, createWriteStream(path.join(vmDir, `${ts[4]}.xva`)));
  } finally {
    await xapi.logout();
  }
  await writeFile(path.join(vmDir, `${ts[4]}.xva.checksum`), '$1$$0123456789abcdef0123456789abcdef');
  const full = {
    ...deltaMetadata(0, 'x', false, ''),
    mode: 'full',
    xva: `./${ts[4]}.xva`,
    timestamp: Date.parse('2026-01-14T02:00:00Z'),
  };
  for (const k of ['vbds', 'vdis', 'vhds', 'vifs', 'vtpms', 'isVhdDifferencing', 'includeNonNbdQcow2Fix'])
    delete (full as Record<string, unknown>)[k];
  await writeFile(path.join(vmDir, `${ts[4]}.json`), JSON.stringify(full));
  await writeFile(path.join(vmDir, 'cache.json.gz'), gzipSync(JSON.stringify({})));
}

beforeAll(async () => {
  stack = await startBackupStack({
    scenario: {
      pools: [
        {
          id: 'lab',
          credentials: [{ username: 'root', password: 'lab-secret-pw' }],
          srs: [{ id: 'local', name: 'Local', size: '2GiB', default: true }],
          networks: [{ id: 'net0', name: 'Network 0' }],
          vms: [
            {
              name: 'halted',
              power: 'Halted' as const,
              disks: [
                { name: 'h root', size: '5MiB', content: { type: 'random' as const, seed: 9, blocks: 2 } },
              ],
            },
          ],
        },
      ],
    },
    jobs: [],
    remotes: ['xo'],
  });
  await writeXoRemote(stack.remoteDir('xo'));
}, 120_000);
afterAll(() => stack?.close());

const id = (i: number) => `xo:${vmUuid}/${ts[i]}`;

function restore(backupId: string): Promise<RestoreVmResult> {
  return stack.client.workflow.execute('restoreVm', {
    taskQueue: MAIN_QUEUE,
    workflowId: `xcpb:restore:xo-${randomUUID()}`,
    args: [{ backupId, poolId: 'lab', sr: 'Local' }],
  });
}

const bytesOf = async (vdi: string) => readAll(await stack.pool().control.readVdi(vdi));

describe("Xen Orchestra's layout", () => {
  it('lists every entry: deltas with their chain length, the full, a broken and a partial one', async () => {
    const { rows, errors } = await listBackupRows(stack.config);
    expect(errors).toEqual([]);
    const byTs = new Map(rows.map((r) => [r.id.split('/').pop(), r]));
    expect(byTs.get(ts[0])).toMatchObject({
      id: id(0),
      vmName: 'xo-made',
      mode: 'delta',
      jobId,
      status: 'ok',
      chainLength: 1,
    });
    expect(byTs.get(ts[1])).toMatchObject({
      mode: 'delta',
      status: 'ok',
      chainLength: 2,
      size: 4 * VHD_BLOCK_SIZE,
    });
    expect(byTs.get(ts[2])).toMatchObject({
      status: 'broken',
      problems: [expect.stringContaining('missing')],
    });
    expect(byTs.get(ts[3])).toMatchObject({ status: 'partial' });
    expect(byTs.get(ts[4])).toMatchObject({ mode: 'full', status: 'ok', time: '2026-01-14T02:00:00.000Z' });
    expect(rows).toHaveLength(5);
  });

  it('restores both delta points and the full one byte for byte on a pool that never saw the VM', async () => {
    const r0 = await restore(id(0));
    expect((await bytesOf(r0.vdis[0].uuid)).equals(disk0)).toBe(true);
    const r1 = await restore(id(1));
    expect((await bytesOf(r1.vdis[0].uuid)).equals(disk1)).toBe(true);
    expect(r1.vmName).toBe('xo-made (restored 2026-01-11 02:00:00 UTC)');
    expect(r1.networks).toEqual([expect.stringContaining('first network (Network 0)')]);
    const full = await restore(id(4));
    const halted = await stack.vm('halted');
    expect((await bytesOf(full.vdis[0].uuid)).equals(await bytesOf(halted.disks[0].uuid))).toBe(true);
  });

  it('a broken entry fails clearly and creates nothing', async () => {
    const err = await restore(id(2)).then(
      () => undefined,
      (e) => e,
    );
    expect(String(err?.cause?.message ?? err)).toMatch(/is missing on remote xo/);
  });

  it('the CLI lists them (--json) and restores one (--json names the VM and its VDIs)', async () => {
    const config = await stack.writeConfigFile();
    const env = {
      TEMPORAL_ADDRESS: temporalAddress(),
      TEMPORAL_NAMESPACE: stack.namespace,
      [PASSWORD_ENV]: stack.pool().password,
    };
    const list = await runXcpb(['backups', 'list', '--config', config, '--vm', 'xo-made', '--json'], env);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).backups.map((b: { id: string }) => b.id)).toContain(id(1));
    const table = await runXcpb(['backups', 'list', '--config', config], env);
    expect(table.stdout).toMatch(/broken/);
    const restored = await runXcpb(
      ['restore', id(1), '--config', config, '--pool', 'lab', '--sr', 'Local', '--start', '--json'],
      env,
    );
    expect(restored.code, restored.stderr).toBe(0);
    const out = JSON.parse(restored.stdout);
    expect(out).toMatchObject({
      vmName: 'xo-made (restored 2026-01-11 02:00:00 UTC)',
      powerState: 'Running',
      mode: 'delta',
    });
    expect((await bytesOf(out.vdis[0].uuid)).equals(disk1)).toBe(true);
    const bad = await runXcpb(
      ['restore', 'not-an-id', '--config', config, '--pool', 'lab', '--sr', 'Local'],
      env,
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid backup id/);
    // Well-formed but of no backup: refused before any workflow starts, naming the remote.
    const vmUuid = id(1).split(':')[1].split('/')[0];
    const unknown = await runXcpb(
      ['restore', `xo:${vmUuid}/20990101T000000Z`, '--config', config, '--pool', 'lab', '--sr', 'Local'],
      { ...env, TEMPORAL_ADDRESS: '127.0.0.1:1' },
    );
    expect(unknown.code, unknown.stderr).toBe(2);
    expect(unknown.stderr).toMatch(
      /no backup xo:\S+\/20990101T000000Z on remote xo \(that VM has \d+ backups, the newest xo:/,
    );
  });
});
