// The contract every Remote implementation must meet (restic's backend test suite idea): each
// implementation and each decorator that claims to be transparent runs this same suite.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isRemoteError, type Remote } from '../../remotes/remote';
import { isTemporaryName } from '../../remotes/temporary-names';

export interface RemoteUnderTest {
  remote: Remote;
  /** A writable handle on the same storage, to prepare files for read-only views. */
  seed: Remote;
  /** Makes the storage disappear (unmount, delete the root…), for the UNAVAILABLE checks. */
  vanish(): Promise<void>;
  cleanup(): Promise<void>;
}

export interface ConformanceOptions {
  /** false for read-only views: every write must then be refused with EROFS. */
  writable: boolean;
  /** the remote must offer positional reads (openRead: a folder, and what wraps one) */
  positionalReads?: boolean;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function expectRemoteError(promise: Promise<unknown>, remoteId: string, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isRemoteError(error), `expected a RemoteError ${code}, got ${String(error)}`).toBe(true);
  expect(error).toMatchObject({ code, remoteId });
  expect(String((error as Error).message)).toContain(remoteId);
}

export function describeRemoteConformance(
  name: string,
  open: () => Promise<RemoteUnderTest>,
  options: ConformanceOptions,
): void {
  describe(`Remote conformance: ${name}`, () => {
    let t: RemoteUnderTest;
    beforeEach(async () => {
      t = await open();
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('reads back what was written, whole and by byte range', async () => {
      const data = Buffer.from('0123456789abcdef');
      await t.seed.writeFileAtomic('a/b/file.bin', data);
      expect(await t.remote.readFile('a/b/file.bin')).toEqual(data);
      expect(await readAll(await t.remote.createReadStream('a/b/file.bin'))).toEqual(data);
      expect(await readAll(await t.remote.createReadStream('a/b/file.bin', { start: 4, end: 7 }))).toEqual(
        Buffer.from('4567'),
      );
      expect(await readAll(await t.remote.createReadStream('a/b/file.bin', { start: 10 }))).toEqual(
        Buffer.from('abcdef'),
      );
    });

    it("reads at any offset into the caller's buffer, where it offers openRead", async () => {
      if (options.positionalReads) expect(t.remote.openRead, 'openRead offered').toBeTypeOf('function');
      if (!t.remote.openRead) return;
      const data = Buffer.from('0123456789abcdef');
      await t.seed.writeFileAtomic('p/file.bin', data);
      const handle = await t.remote.openRead('p/file.bin');
      try {
        expect(await handle.stat()).toMatchObject({ size: data.length });
        const into = Buffer.alloc(6, 0x2e);
        expect(await handle.read(into, 1, 4, 10)).toMatchObject({ bytesRead: 4 });
        expect(into.toString()).toBe('.abcd.');
        expect((await handle.read(into, 0, 6, 14)).bytesRead).toBe(2); // short at the end
      } finally {
        await handle.close();
      }
      await expectRemoteError(t.remote.openRead('p/missing.bin'), t.remote.id, 'ENOENT');
    });

    it('lists names sorted, stats files and directories, tells what exists', async () => {
      await t.seed.writeFileAtomic('dir/b.json', '{}');
      await t.seed.writeFileAtomic('dir/a.json', '{"x":1}');
      await t.seed.writeFileAtomic('dir/sub/c', 'c');
      expect(await t.remote.list('dir')).toEqual(['a.json', 'b.json', 'sub']);
      expect(await t.remote.stat('dir/a.json')).toMatchObject({ size: 7, isDirectory: false });
      expect((await t.remote.stat('dir/sub')).isDirectory).toBe(true);
      expect(await t.remote.exists('dir/a.json')).toBe(true);
      expect(await t.remote.exists('dir/nope.json')).toBe(false);
      expect(await t.remote.exists('nope/nope.json')).toBe(false);
    });

    it('reports missing files and directories as ENOENT naming the remote', async () => {
      await expectRemoteError(t.remote.readFile('missing.json'), t.remote.id, 'ENOENT');
      await expectRemoteError(t.remote.createReadStream('missing.bin'), t.remote.id, 'ENOENT');
      await expectRemoteError(t.remote.stat('missing'), t.remote.id, 'ENOENT');
      await expectRemoteError(t.remote.list('missing-dir'), t.remote.id, 'ENOENT');
    });

    it('refuses paths that climb out of the root', async () => {
      for (const path of ['../escape', 'a/../../b', 'a/..', 'bad\\path']) {
        await expectRemoteError(t.remote.readFile(path), t.remote.id, 'INVALID_PATH');
        if (options.writable) {
          await expectRemoteError(t.remote.writeFileAtomic(path, 'x'), t.remote.id, 'INVALID_PATH');
        }
      }
    });

    it('treats leading slashes and "." segments as the same relative path', async () => {
      await t.seed.writeFileAtomic('x/./y.txt', 'y');
      expect((await t.remote.readFile('/x/y.txt')).toString()).toBe('y');
    });

    if (!options.writable) {
      it('refuses every write with EROFS', async () => {
        await t.seed.writeFileAtomic('keep.txt', 'keep');
        const id = t.remote.id;
        await expectRemoteError(t.remote.writeFileAtomic('w.txt', 'x'), id, 'EROFS');
        await expectRemoteError(t.remote.writeFileExclusive('w.txt', 'x'), id, 'EROFS');
        await expectRemoteError(t.remote.createWriteStreamAtomic('w.txt'), id, 'EROFS');
        await expectRemoteError(t.remote.delete('keep.txt'), id, 'EROFS');
        await expectRemoteError(t.remote.rename('keep.txt', 'moved.txt'), id, 'EROFS');
        await expectRemoteError(t.remote.copy('keep.txt', 'copied.txt'), id, 'EROFS');
        await expectRemoteError(t.remote.checkWritable(), id, 'EROFS');
        expect(t.remote.inPlace).toBeUndefined();
        expect((await t.seed.readFile('keep.txt')).toString()).toBe('keep');
      });
      return;
    }

    it('replaces a file atomically and leaves no temporary file behind', async () => {
      await t.remote.writeFileAtomic('d/f.json', 'old');
      await t.remote.writeFileAtomic('d/f.json', 'new content');
      expect((await t.remote.readFile('d/f.json')).toString()).toBe('new content');
      expect(await t.remote.list('d')).toEqual(['f.json']);
    });

    it('streams into a temporary name (or an unfinished upload) and shows the file only on commit', async () => {
      const write = await t.remote.createWriteStreamAtomic('vm/disk.vhd');
      await pipeline(Readable.from([Buffer.alloc(1000, 1), Buffer.alloc(24, 2)]), write.stream);
      expect(await t.remote.exists('vm/disk.vhd')).toBe(false);
      // A folder shows a hidden temporary file; an object store shows nothing until the upload completes.
      const during = await t.remote.list('vm').catch(() => []);
      for (const name of during) expect(isTemporaryName(name), name).toBe(true);
      await write.commit();
      await write.commit(); // idempotent
      expect((await t.remote.stat('vm/disk.vhd')).size).toBe(1024);
      expect(await t.remote.list('vm')).toEqual(['disk.vhd']);
    });

    it('commit() ends a stream the caller left open', async () => {
      const write = await t.remote.createWriteStreamAtomic('open.bin');
      write.stream.write(Buffer.from('abc'));
      await write.commit();
      expect((await t.remote.readFile('open.bin')).toString()).toBe('abc');
    });

    it('abort() removes the temporary file and keeps the previous version', async () => {
      await t.remote.writeFileAtomic('vm/disk.vhd', 'previous');
      const write = await t.remote.createWriteStreamAtomic('vm/disk.vhd');
      write.stream.write(Buffer.from('partial'));
      await write.abort();
      await write.abort(); // idempotent
      await expectRemoteError(write.commit(), t.remote.id, 'ABORTED');
      expect(await t.remote.list('vm')).toEqual(['disk.vhd']);
      expect((await t.remote.readFile('vm/disk.vhd')).toString()).toBe('previous');
    });

    it('creates exclusively: the second create fails with EEXIST', async () => {
      await t.remote.writeFileExclusive('locks/vm.lock', 'first');
      await expectRemoteError(t.remote.writeFileExclusive('locks/vm.lock', 'second'), t.remote.id, 'EEXIST');
      expect((await t.remote.readFile('locks/vm.lock')).toString()).toBe('first');
    });

    it('deletes files, and deleting a missing file is not an error', async () => {
      await t.remote.writeFileAtomic('d/x', 'x');
      await t.remote.delete('d/x');
      expect(await t.remote.exists('d/x')).toBe(false);
      await t.remote.delete('d/x');
    });

    it('renames, replacing the target and creating its directory', async () => {
      await t.remote.writeFileAtomic('a/from', 'from');
      await t.remote.writeFileAtomic('b/to', 'to');
      await t.remote.rename('a/from', 'b/to');
      expect((await t.remote.readFile('b/to')).toString()).toBe('from');
      expect(await t.remote.exists('a/from')).toBe(false);
      await t.remote.rename('b/to', 'c/d/to');
      expect((await t.remote.readFile('c/d/to')).toString()).toBe('from');
      await expectRemoteError(t.remote.rename('a/from', 'z'), t.remote.id, 'ENOENT');
    });

    it('copies, replacing the target; the source stays', async () => {
      await t.remote.writeFileAtomic('a/src', 'source bytes');
      await t.remote.writeFileAtomic('b/dst', 'old');
      await t.remote.copy('a/src', 'b/dst');
      await t.remote.copy('a/src', 'c/new');
      expect((await t.remote.readFile('b/dst')).toString()).toBe('source bytes');
      expect((await t.remote.readFile('c/new')).toString()).toBe('source bytes');
      expect((await t.remote.readFile('a/src')).toString()).toBe('source bytes');
      expect(await t.remote.list('b')).toEqual(['dst']);
      await expectRemoteError(t.remote.copy('a/missing', 'z'), t.remote.id, 'ENOENT');
    });

    it('passes checkWritable and leaves nothing behind', async () => {
      await t.remote.checkWritable();
      expect(await t.remote.list('')).toEqual([]);
    });

    it('reports a vanished remote as UNAVAILABLE naming the remote, on reads and writes', async () => {
      await t.remote.writeFileAtomic('d/x', 'x');
      await t.vanish();
      const id = t.remote.id;
      await expectRemoteError(t.remote.readFile('d/x'), id, 'UNAVAILABLE');
      await expectRemoteError(t.remote.list('d'), id, 'UNAVAILABLE');
      await expectRemoteError(t.remote.writeFileAtomic('d/y', 'y'), id, 'UNAVAILABLE');
      await expectRemoteError(t.remote.delete('d/x'), id, 'UNAVAILABLE');
      await expectRemoteError(t.remote.checkWritable(), id, 'UNAVAILABLE');
    });
  });
}
