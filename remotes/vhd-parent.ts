// The real `readVhdParent` for listVmBackups / applyRetention: reads a VHD's header on a remote with
// local paths (formats/vhd) and answers with its parent's path relative to the remote root.
import nodePath from 'node:path';
import { DiskType, openVhdFile, parentCandidates, resolveParentPath } from '../formats/vhd';
import { type Remote, RemoteError } from './remote';

export async function readVhdParentFromHeader(remote: Remote, vhdPath: string): Promise<string | null> {
  const local = remote.localPath(vhdPath);
  const root = remote.localPath('');
  if (local === undefined || root === undefined) {
    throw new RemoteError(
      remote.id,
      vhdPath,
      'UNSUPPORTED',
      'reading VHD headers needs a remote with local paths',
    );
  }
  const file = await openVhdFile(local);
  try {
    if (file.diskType !== DiskType.differencing) return null;
    // The parent that exists if any, else the one the header names (so a listing can say it is missing).
    const parent = await resolveParentPath(file).catch(async () => (await parentCandidates(file))[0]);
    if (parent === undefined) return `${vhdPath}.parent-unknown`;
    return nodePath.relative(root, parent).split(nodePath.sep).join('/');
  } finally {
    await file.close();
  }
}
