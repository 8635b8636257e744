// Reading what a backup left on a local remote, for assertions.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

export interface WrittenBackup {
  ts: string;
  metadata: any;
  /** snapshot VDI uuid → { live VDI uuid, VHD path relative to the VM folder } */
  disks: { snapshotVdi: string; liveVdi: string; vhd: string; differencing: boolean }[];
}

export async function listJson(remoteDir: string, vmUuid: string): Promise<string[]> {
  const dir = path.join(remoteDir, 'xo-vm-backups', vmUuid);
  return (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).sort();
}

export async function readBackup(remoteDir: string, vmUuid: string, ts: string): Promise<WrittenBackup> {
  const metadata = JSON.parse(
    await readFile(path.join(remoteDir, 'xo-vm-backups', vmUuid, `${ts}.json`), 'utf8'),
  );
  const disks = Object.entries(metadata.vhds ?? {}).map(([ref, vhd]) => ({
    snapshotVdi: metadata.vdis[ref].uuid as string,
    liveVdi: metadata.vdis[ref].$snapshot_of$uuid as string,
    vhd: vhd as string,
    differencing: metadata.isVhdDifferencing[`${ref}.vhd`] as boolean,
  }));
  return { ts, metadata, disks };
}

/** The chain of VHD files of one disk up to and including `ts`, oldest first (absolute paths). */
export async function chainUpTo(
  remoteDir: string,
  vmUuid: string,
  jobId: string,
  liveVdi: string,
  ts: string,
): Promise<string[]> {
  const dir = path.join(remoteDir, 'xo-vm-backups', vmUuid, 'vdis', jobId, liveVdi);
  return (await readdir(dir))
    .filter((n) => n.endsWith('.vhd') && !n.startsWith('.') && n <= `${ts}.vhd`)
    .sort()
    .map((n) => path.join(dir, n));
}

export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(path.relative(dir, path.join(e.parentPath, e.name)));
  }
  return out.sort();
}
