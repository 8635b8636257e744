// SMB and NFS remotes as Xen Orchestra does them: the worker mounts the share into a private folder
// (`<state dir>/mounts/<remote id>`) on first use, checks it, and uses it as a local folder; it
// unmounts on shutdown. CIFS credentials go through a credentials file of mode 600, removed once the
// mount is done: never on a command line, where `ps` would show them. A share that cannot be
// mounted fails with mount's own reason, as a RemoteError naming the remote (that target fails, the
// others go on); the next use tries again.
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import nodePath from 'node:path';
import { createLocalRemote } from './local';
import {
  type FolderLocks,
  type InPlaceEdits,
  type LockFolderTimes,
  type Remote,
  RemoteError,
} from './remote';

export interface MountSpec {
  id: string;
  url: string;
  /** SMB */
  domain?: string;
  username?: string;
  password?: () => Promise<string>;
  /** `-o` options (NFS: e.g. `vers=4.1,soft`; SMB: added to the credentials option) */
  mountOptions?: string;
}

export type MountRunner = (command: string, args: string[]) => Promise<{ code: number; stderr: string }>;

export const runCommand: MountRunner = (command, args) =>
  new Promise((resolve) => {
    execFile(command, args, { timeout: 120_000 }, (error, _stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stderr: String(stderr || (error && !stderr ? error.message : '')) });
    });
  });

/** What `mount` gets for a URL: type, device and the folder of the share to use as the root. */
export function mountTarget(
  id: string,
  url: string,
): { type: 'cifs' | 'nfs'; device: string; subPath: string } {
  const parsed = new URL(url);
  const segments = parsed.pathname
    .split('/')
    .filter((s) => s !== '')
    .map(decodeURIComponent);
  if (parsed.hostname === '' || segments.length === 0 || segments.includes('..'))
    throw new RemoteError(
      id,
      '',
      'UNSUPPORTED',
      `invalid share URL ${JSON.stringify(url)}: expected smb://host/share[/path] or nfs://host/export[/path]`,
    );
  if (parsed.protocol === 'smb:') {
    const [share, ...rest] = segments;
    return { type: 'cifs', device: `//${parsed.hostname}/${share}`, subPath: rest.join('/') };
  }
  if (parsed.protocol === 'nfs:') {
    // The whole path is the export (what the server exports is not knowable from the URL).
    return { type: 'nfs', device: `${parsed.hostname}:/${segments.join('/')}`, subPath: '' };
  }
  throw new RemoteError(id, '', 'UNSUPPORTED', `not a share URL: ${url}`);
}

export interface MountedRemote extends Remote {
  /** Unmounts the share if this process mounted it. */
  unmount(): Promise<void>;
  readonly mountPoint: string;
}

export function createMountedRemote(
  spec: MountSpec,
  mountRoot: string,
  run: MountRunner = runCommand,
): MountedRemote {
  const { type, device, subPath } = mountTarget(spec.id, spec.url);
  const mountPoint = nodePath.join(mountRoot, spec.id);
  const root = subPath === '' ? mountPoint : nodePath.join(mountPoint, ...subPath.split('/'));
  const local = createLocalRemote({ id: spec.id, root, url: spec.url });
  let mounted: Promise<void> | undefined;
  let ours = false;

  const isMounted = async () => {
    const table = await readFile('/proc/self/mounts', 'utf8').catch(() => '');
    return table.split('\n').some((line) => line.split(' ')[1] === mountPoint);
  };
  const mount = async () => {
    await mkdir(mountPoint, { recursive: true, mode: 0o700 });
    if (!(await isMounted())) {
      const options: string[] = [];
      let credentials: string | undefined;
      if (type === 'cifs') {
        credentials = nodePath.join(mountRoot, `.${spec.id}.credentials`);
        const lines = [
          `username=${spec.username ?? 'guest'}`,
          `password=${spec.password ? await spec.password() : ''}`,
        ];
        if (spec.domain) lines.push(`domain=${spec.domain}`);
        await writeFile(credentials, `${lines.join('\n')}\n`, { mode: 0o600 });
        options.push(`credentials=${credentials}`);
      }
      if (spec.mountOptions) options.push(spec.mountOptions);
      const args = ['-t', type, device, mountPoint, ...(options.length ? ['-o', options.join(',')] : [])];
      try {
        const { code, stderr } = await run('mount', args);
        if (code !== 0)
          throw new RemoteError(
            spec.id,
            '',
            'UNAVAILABLE',
            `cannot mount ${device} (${type}) on ${mountPoint}: ${stderr.trim().split('\n')[0] || `mount exited with ${code}`}`,
          );
      } finally {
        if (credentials) await rm(credentials, { force: true });
      }
      ours = true;
    }
    // The check: the share answers, and the folder of the URL is there.
    await mkdir(root, { recursive: true });
  };
  const ready = () => {
    if (mounted === undefined) {
      mounted = mount();
      mounted.catch(() => {
        mounted = undefined;
      });
    }
    return mounted;
  };
  const after =
    <A extends unknown[], R>(op: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      await ready();
      return op(...a);
    };
  const inPlace: InPlaceEdits = {
    mergeVhdIntoParent: after((child: string, options?: Parameters<InPlaceEdits['mergeVhdIntoParent']>[1]) =>
      local.inPlace!.mergeVhdIntoParent(child, options),
    ),
    finishInterruptedMerges: after(
      (dir: string, options?: Parameters<InPlaceEdits['finishInterruptedMerges']>[1]) =>
        local.inPlace!.finishInterruptedMerges(dir, options),
    ),
  };
  // Xen Orchestra locks VM folders on SMB and NFS shares as on any folder: the same lock folders.
  const locks = local.folderLocks!;
  const folderLocks: FolderLocks = {
    create: after((dir: string, times: LockFolderTimes) => locks.create(dir, times)),
    times: after((dir: string) => locks.times(dir)),
    touch: after((dir: string, times: LockFolderTimes) => locks.touch(dir, times)),
    remove: after((dir: string) => locks.remove(dir)),
    touchFile: after((path: string, mtimeMs: number) => locks.touchFile(path, mtimeMs)),
  };
  return {
    id: spec.id,
    url: spec.url,
    mountPoint,
    readFile: after((p: string) => local.readFile(p)),
    createReadStream: after((p: string, r?: Parameters<Remote['createReadStream']>[1]) =>
      local.createReadStream(p, r),
    ),
    // A mounted share is a folder: restores read its chains with pread, as from a local remote.
    openRead: after((p: string) => local.openRead!(p)),
    writeFileAtomic: after((p: string, d: Buffer | string) => local.writeFileAtomic(p, d)),
    writeFileExclusive: after((p: string, d: Buffer | string) => local.writeFileExclusive(p, d)),
    createWriteStreamAtomic: after((p: string) => local.createWriteStreamAtomic(p)),
    list: after((d: string) => local.list(d)),
    stat: after((p: string) => local.stat(p)),
    exists: after((p: string) => local.exists(p)),
    delete: after((p: string) => local.delete(p)),
    rename: after((f: string, t: string) => local.rename(f, t)),
    copy: after((f: string, t: string) => local.copy(f, t)),
    checkWritable: after(() => local.checkWritable()),
    inPlace,
    folderLocks,
    async unmount() {
      if (!ours) return;
      const { code, stderr } = await run('umount', [mountPoint]);
      if (code !== 0)
        throw new RemoteError(spec.id, '', 'EIO', `cannot unmount ${mountPoint}: ${stderr.trim()}`);
      ours = false;
      mounted = undefined;
    },
  };
}
