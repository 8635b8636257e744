// The set-up most integration tests share, said once: one pool "lab" (a local SR, a network) with a
// few running VMs of random disks, and a job of the VMs of one tag on local remotes. Each test keeps
// its own pool password (a test checks that a password never reaches Temporal or the logs, and each
// file's is its own, so a leak names the file it came from).
import type { Scenario } from '../../simulator';

type PoolInput = Scenario['pools'][number];
type VmInput = NonNullable<PoolInput['vms']>[number];
type DiskInput = NonNullable<VmInput['disks']>[number];

/** Random content: `blocks` 2 MiB blocks of data, the rest of the disk empty; `seed` makes it repeatable. */
export const random = (seed: number, blocks: number) => ({ type: 'random' as const, seed, blocks });

/** A disk of `size` with `blocks` random blocks (seeded). */
export const disk = (name: string, size: string, seed: number, blocks: number): DiskInput => ({
  name,
  size,
  content: random(seed, blocks),
});

/** A running VM of the lab, tagged, on the lab's network. */
export const labVm = (
  name: string,
  { tags, disks, ...rest }: { tags: string[]; disks: DiskInput[] } & Partial<VmInput>,
): VmInput => ({ name, tags, power: 'Running', networks: ['net0'], disks, ...rest });

/** The pool "lab": root's password, one local SR of `srSize` (the default SR), network net0, the VMs. */
export const labPool = ({
  password,
  srSize = '4GiB',
  vms,
}: {
  password: string;
  srSize?: string;
  vms: VmInput[];
}): PoolInput => ({
  id: 'lab',
  credentials: [{ username: 'root', password }],
  srs: [{ id: 'local', name: 'Local', size: srSize, default: true }],
  networks: [{ id: 'net0', name: 'Network 0' }],
  vms,
});

/** A scenario of the lab alone. */
export const labScenario = (pool: Parameters<typeof labPool>[0]): Scenario => ({ pools: [labPool(pool)] });

/** A daily schedule at 03:00 keeping `remote` backups and `snapshot` rolling snapshots. */
export const dailySchedule = (remote: number, snapshot = 1) => [
  { id: 'daily', cron: '0 3 * * *', retention: { remote, snapshot } },
];

/** A job (config entry) of the VMs tagged `tag`: delta to the remote "nas", daily, 5 kept, unless told. */
export const tagJob = (
  id: string,
  tag: string,
  {
    mode = 'delta',
    remotes = ['nas'],
    schedules = dailySchedule(5),
  }: { mode?: 'delta' | 'full'; remotes?: string[]; schedules?: unknown[] } = {},
) => ({ id, mode, vms: { tags: [tag] }, remotes, schedules });
