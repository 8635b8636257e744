// The total of a full backup's progress bar: XAPI streams an XVA with no length, so the export
// activity reads a bound from the VM's disks first (activities/xva-size.ts). Checked against what
// the simulator really streams: never less, and close for thin disks and chains of snapshots.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { xvaExportTotal } from '../../activities/xva-size';
import { xvaSizeBound } from '../../formats/xva';
import { type SimPool, type Simulator, startSimulator } from '../../simulator/index';
import { connectXapi, type XapiClient } from '../../xapi/index';

const MiB = 1024 * 1024;
let sim: Simulator;
let pool: SimPool;
let xapi: XapiClient;

beforeAll(async () => {
  sim = await startSimulator({
    scenario: {
      pools: [
        {
          id: 'lab',
          credentials: [{ username: 'root', password: 'xva-total-pw' }],
          srs: [{ id: 'local', name: 'Local', size: '2GiB', default: true }],
          vms: [
            {
              name: 'thin',
              power: 'Halted',
              disks: [
                { size: '256MiB', content: { type: 'random', seed: 1, blocks: 4 } },
                { size: '64MiB', content: { type: 'random', seed: 2, blocks: 2 } },
              ],
            },
            {
              name: 'full',
              power: 'Halted',
              disks: [{ size: '12MiB', content: { type: 'random', seed: 3 } }],
            },
          ],
        },
      ],
    },
  });
  pool = sim.pool('lab');
  xapi = await connectXapi({ url: pool.url, username: pool.username, password: pool.password });
});
afterAll(async () => {
  await xapi?.logout();
  await sim?.close();
});

async function snapshotOf(name: string, label: string): Promise<string> {
  const [vm] = await xapi.call<string[]>('VM.get_by_name_label', name);
  return xapi.call<string>('VM.snapshot', vm, label);
}

async function exportedBytes(ref: string): Promise<number> {
  const { body } = await xapi.getResource('/export', { ref, use_compression: 'false' });
  let n = 0;
  for await (const chunk of body) n += (chunk as Buffer).length;
  return n;
}

/** ova.xml is left out of the bound: a few KiB. */
const OVA_XML_SLACK = 64 * 1024;

describe('the total of an XVA export', () => {
  it('bounds what a thin VM streams, far below its virtual size', async () => {
    const snap = await snapshotOf('thin', 'first');
    const total = await xvaExportTotal(xapi, snap);
    const sent = await exportedBytes(snap);
    expect(total + OVA_XML_SLACK).toBeGreaterThanOrEqual(sent);
    // 320 MiB of disks holding 12 MiB: the bound stays within a few chunks per disk of the stream.
    expect(total).toBeLessThan(sent + 6 * MiB);
    expect(total).toBeLessThan(64 * MiB);
  });

  it('counts the whole chain under a later snapshot, not just its own layer', async () => {
    const [vm] = await xapi.call<string[]>('VM.get_by_name_label', 'thin');
    const first = await xapi.getRecord<{ VBDs: string[] }>('VM', vm);
    const vdi = await xapi.getRecord<{ uuid: string }>(
      'VDI',
      (await xapi.getRecord<{ VDI: string }>('VBD', first.VBDs[0])).VDI,
    );
    await pool.control.writeRandomBlocks(vdi.uuid, { count: 3, seed: 'later' });
    const snap = await snapshotOf('thin', 'second');
    const total = await xvaExportTotal(xapi, snap);
    const sent = await exportedBytes(snap);
    expect(total + OVA_XML_SLACK).toBeGreaterThanOrEqual(sent);
    expect(sent).toBeGreaterThan(12 * MiB); // the old data and the new blocks
    expect(total).toBeLessThan(sent + 12 * MiB);
  });

  it('is the whole disk, with the tar around its chunks, for a full disk', async () => {
    const snap = await snapshotOf('full', 'only');
    const total = await xvaExportTotal(xapi, snap);
    const sent = await exportedBytes(snap);
    expect(total).toBe(xvaSizeBound([{ virtualSize: 12 * MiB, dataBytes: 12 * MiB }]));
    expect(total + OVA_XML_SLACK).toBeGreaterThanOrEqual(sent);
    expect(total).toBeLessThanOrEqual(sent);
  });
});
