import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { withFaults } from '../../remotes/faulty';
import type { Remote } from '../../remotes/remote';
import { tempRemote } from './fixtures';

let inner: Remote;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ remote: inner, cleanup } = await tempRemote('offsite'));
});
afterEach(() => cleanup());

const chunks = (n: number, size: number) =>
  Readable.from(Array.from({ length: n }, (_, i) => Buffer.alloc(size, i)));

describe('withFaults', () => {
  it('a stream that exceeds the write budget fails with ENOSPC; nothing partial becomes visible', async () => {
    await inner.writeFileAtomic('vm/disk.vhd', 'previous');
    const remote = withFaults(inner, { writeBudgetBytes: 2500 });
    const write = await remote.createWriteStreamAtomic('vm/disk.vhd');
    const error = await pipeline(chunks(5, 1000), write.stream).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ENOSPC', remoteId: 'offsite' });
    await expect(write.commit()).rejects.toMatchObject({ code: 'ENOSPC' });
    await write.abort();
    expect(await inner.list('vm')).toEqual(['disk.vhd']);
    expect((await inner.readFile('vm/disk.vhd')).toString()).toBe('previous');
    expect(remote.bytesWritten).toBe(2500);
  });

  it('writes within the budget go through', async () => {
    const remote = withFaults(inner, { writeBudgetBytes: 5000 });
    const write = await remote.createWriteStreamAtomic('vm/disk.vhd');
    await pipeline(chunks(4, 1000), write.stream);
    await write.commit();
    await remote.writeFileAtomic('vm/x.json', '{}');
    expect((await inner.stat('vm/disk.vhd')).size).toBe(4000);
    await expect(remote.writeFileAtomic('vm/y.json', Buffer.alloc(1000))).rejects.toMatchObject({
      code: 'ENOSPC',
    });
  });

  it('unwritable: writes, deletes, renames and the probe fail with EACCES; reads still work', async () => {
    await inner.writeFileAtomic('a.txt', 'a');
    const remote = withFaults(inner);
    remote.faults.unwritable = true;
    for (const attempt of [
      remote.writeFileAtomic('b.txt', 'b'),
      remote.writeFileExclusive('b.txt', 'b'),
      remote.createWriteStreamAtomic('b.txt'),
      remote.delete('a.txt'),
      remote.rename('a.txt', 'c.txt'),
      remote.checkWritable(),
    ]) {
      await expect(attempt).rejects.toMatchObject({ code: 'EACCES', remoteId: 'offsite' });
    }
    expect((await remote.readFile('a.txt')).toString()).toBe('a');
  });

  it('a remote becoming unwritable in the middle of a stream fails that stream', async () => {
    const remote = withFaults(inner);
    const write = await remote.createWriteStreamAtomic('big.bin');
    const source = Readable.from(
      (async function* () {
        yield Buffer.alloc(100);
        remote.faults.unwritable = true;
        yield Buffer.alloc(100);
      })(),
    );
    await expect(pipeline(source, write.stream)).rejects.toMatchObject({
      code: 'EACCES',
      remoteId: 'offsite',
    });
    await write.abort();
    expect(await inner.list('')).toEqual([]);
  });

  it('vanished: every operation fails with UNAVAILABLE naming the remote', async () => {
    const remote = withFaults(inner, { vanished: true });
    for (const attempt of [
      remote.list(''),
      remote.readFile('x'),
      remote.exists('x'),
      remote.writeFileAtomic('x', 'x'),
    ]) {
      await expect(attempt).rejects.toMatchObject({ code: 'UNAVAILABLE', remoteId: 'offsite' });
    }
    await expect(remote.checkWritable()).rejects.toThrow(/remote "offsite"/);
  });
});
