import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simCommand } from '../../cli/sim';
import { loadScenario, parseScenario, startSimulator } from '../../simulator/index';
import { smallScenario } from './fixtures';
import { login, rpc } from './rpc-helpers';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'xcpb-scenario-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('scenarios', () => {
  it('the demo scenario: pool demo, root/xcpb-demo, VMs of several tags and power states, two SRs', async () => {
    const sim = await startSimulator({ scenario: 'demo' });
    try {
      const p = sim.pool('demo');
      expect([p.username, p.password]).toEqual(['root', 'xcpb-demo']);
      const s = await login(p.url, 'root', 'xcpb-demo');
      const vms = Object.values<any>(await rpc(p.url, 'VM.get_all_records', s)).filter(
        (v) => !v.is_control_domain && !v.is_a_template,
      );
      expect(new Set(vms.flatMap((v) => v.tags))).toEqual(new Set(['prod', 'web', 'db', 'dev', 'no-backup']));
      expect(new Set(vms.map((v) => v.power_state))).toEqual(new Set(['Running', 'Halted', 'Suspended']));
      expect(vms.some((v) => v.VBDs.length === 2)).toBe(true);
      expect(await rpc(p.url, 'SR.get_all', s)).toHaveLength(2);
      const suspended = vms.find((v) => v.power_state === 'Suspended');
      expect(suspended.suspend_VDI).toMatch(/^OpaqueRef:/);
    } finally {
      await sim.close();
    }
  });

  it('several pools in one process, each on its own port with its own credentials', async () => {
    const a = smallScenario('a').pools[0];
    const b = { ...smallScenario('b').pools[0], credentials: [{ username: 'admin', password: 'other' }] };
    const sim = await startSimulator({ scenario: { pools: [a, b] } });
    try {
      expect(sim.pools.map((p) => p.id)).toEqual(['a', 'b']);
      expect(sim.pool('a').url).not.toBe(sim.pool('b').url);
      const sb = await login(sim.pool('b').url, 'admin', 'other');
      expect(await rpc(sim.pool('b').url, 'VM.get_all', sb)).toHaveLength(4);
      await expect(login(sim.pool('a').url, 'admin', 'other')).rejects.toMatchObject({
        code: 'SESSION_AUTHENTICATION_FAILED',
      });
      expect(() => sim.pool('c')).toThrow(/no simulated pool c \(pools: a, b\)/);
    } finally {
      await sim.close();
    }
  });

  it('a disk holding an ext4 filesystem built from a folder (mke2fs -d)', async () => {
    const folder = join(dir, 'content');
    await mkdir(join(folder, 'etc'), { recursive: true });
    await writeFile(join(folder, 'etc', 'hostname'), 'guest-42\n');
    const yaml = join(dir, 'ext4.yaml');
    await writeFile(
      yaml,
      `pools:
  - id: fs
    credentials: [{ username: root, password: pw }]
    srs: [{ id: local, name: Local, size: 256MiB }]
    vms:
      - name: with-fs
        disks: [{ size: 16MiB, content: { type: ext4, folder: ./content } }]
`,
    );
    const sim = await startSimulator({ scenario: yaml });
    try {
      const p = sim.pool('fs');
      const s = await login(p.url, 'root', 'pw');
      const vdi = Object.values<any>(await rpc(p.url, 'VDI.get_all_records', s))[0];
      const img = join(dir, 'fs.img');
      await pipeline(await p.control.readVdi(vdi.uuid), createWriteStream(img));
      const { stdout } = await promisify(execFile)('debugfs', ['-R', 'cat /etc/hostname', img]);
      expect(stdout).toBe('guest-42\n');
    } finally {
      await sim.close();
    }
  });

  it('bad scenarios are refused with the field and the reason', () => {
    expect(() => parseScenario({ pools: [] })).toThrow(/invalid scenario: pools: /);
    const bad = smallScenario();
    (bad.pools[0].vms![0].disks![0] as any).size = 'lots';
    expect(() => parseScenario(bad)).toThrow(/pools\.0\.vms\.0\.disks\.0\.size: not a size: "lots"/);
    const unknownSr = smallScenario();
    unknownSr.pools[0].vms![0].disks![0].sr = 'nowhere';
    expect(() => parseScenario(unknownSr)).toThrow(/VM prod-1 disk on unknown SR nowhere/);
    expect(() => loadScenario(join(dir, 'missing.yaml'))).toThrow(/cannot read scenario/);
  });
});

describe('xcpb sim', () => {
  it('prints each pool URL, serves until stopped, keeps state in --data-dir', async () => {
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
    let stop!: () => void;
    const stopped = new Promise<void>((r) => {
      stop = r;
    });
    const yaml = join(dir, 'cli.json');
    await writeFile(yaml, JSON.stringify(smallScenario('cli')));
    const running = simCommand(['--scenario', yaml, '--data-dir', join(dir, 'cli-state')], io, stopped);
    for (let i = 0; i < 200 && !out.join('').includes('state kept'); i++)
      await new Promise((r) => setTimeout(r, 20));
    const url = /pool cli: (http:\/\/127\.0\.0\.1:\d+)/.exec(out.join(''))![1];
    const s = await login(url);
    expect(await rpc(url, 'VM.get_all', s)).toHaveLength(4);
    stop();
    expect(await running).toBe(0);
    expect(await simCommand([], io, Promise.resolve())).toBe(2);
    expect(out.join('')).toContain('--scenario is required');
  });
});
