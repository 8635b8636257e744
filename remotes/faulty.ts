// Test double: a remote that fails on command. Fault tests flip the switches while a run is going;
// every injected failure is a RemoteError naming the remote, like a real one would be.
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { AtomicWrite, Remote } from './remote';
import { RemoteError } from './remote';

export interface FaultSwitches {
  /** Total bytes the remote accepts from now on; then writes fail with ENOSPC (a full disk). */
  writeBudgetBytes?: number;
  /** Every write, delete and rename fails with EACCES (permissions changed, share read-only). */
  unwritable?: boolean;
  /** Every operation fails with UNAVAILABLE (unmounted, network gone). */
  vanished?: boolean;
}

export interface FaultyRemote extends Remote {
  readonly faults: FaultSwitches;
  /** Bytes accepted so far (what the budget is compared with). */
  readonly bytesWritten: number;
}

export function withFaults(inner: Remote, faults: FaultSwitches = {}): FaultyRemote {
  let bytesWritten = 0;
  const id = inner.id;

  const checkAlive = (path: string) => {
    if (faults.vanished) throw new RemoteError(id, path, 'UNAVAILABLE', 'remote vanished (injected)');
  };
  const checkWritable = (path: string) => {
    checkAlive(path);
    if (faults.unwritable) throw new RemoteError(id, path, 'EACCES', 'remote is not writable (injected)');
  };
  const spend = (path: string, bytes: number) => {
    if (faults.writeBudgetBytes !== undefined && bytesWritten + bytes > faults.writeBudgetBytes) {
      bytesWritten = Math.max(bytesWritten, faults.writeBudgetBytes);
      throw new RemoteError(id, path, 'ENOSPC', 'no space left (injected)');
    }
    bytesWritten += bytes;
  };
  const size = (data: Buffer | string) => (typeof data === 'string' ? Buffer.byteLength(data) : data.length);
  const reading =
    <A extends unknown[], R>(op: (path: string, ...rest: A) => Promise<R>) =>
    async (path: string, ...rest: A): Promise<R> => {
      checkAlive(path);
      return op(path, ...rest);
    };

  const remote: FaultyRemote = {
    id,
    url: inner.url,
    faults,
    get bytesWritten() {
      return bytesWritten;
    },
    readFile: reading((path) => inner.readFile(path)),
    createReadStream: reading((path, range) => inner.createReadStream(path, range)),
    list: reading((dir) => inner.list(dir)),
    stat: reading((path) => inner.stat(path)),
    exists: reading((path) => inner.exists(path)),
    inPlace: inner.inPlace && {
      mergeVhdIntoParent: async (childPath, options) => {
        checkWritable(childPath);
        return inner.inPlace!.mergeVhdIntoParent(childPath, options);
      },
      finishInterruptedMerges: async (dir, options) => {
        checkWritable(dir);
        return inner.inPlace!.finishInterruptedMerges(dir, options);
      },
    },
    folderLocks: inner.folderLocks,
    async writeFileAtomic(path, data) {
      checkWritable(path);
      spend(path, size(data));
      return inner.writeFileAtomic(path, data);
    },
    async writeFileExclusive(path, data) {
      checkWritable(path);
      spend(path, size(data));
      return inner.writeFileExclusive(path, data);
    },
    async createWriteStreamAtomic(path) {
      checkWritable(path);
      return meteredWrite(await inner.createWriteStreamAtomic(path), (bytes) => {
        checkWritable(path);
        spend(path, bytes);
      });
    },
    async delete(path) {
      checkWritable(path);
      return inner.delete(path);
    },
    async rename(from, to) {
      checkWritable(from);
      return inner.rename(from, to);
    },
    async copy(from, to) {
      checkWritable(to);
      return inner.copy(from, to);
    },
    async checkWritable() {
      checkWritable('');
      return inner.checkWritable();
    },
  };
  return remote;
}

/** Forwards chunks to the inner atomic write after `charge` accepted them. */
function meteredWrite(inner: AtomicWrite, charge: (bytes: number) => void): AtomicWrite {
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      try {
        charge(chunk.length);
      } catch (error) {
        callback(error as Error);
        return;
      }
      inner.stream.write(chunk, (error) => callback(error ?? null));
    },
    final(callback) {
      inner.stream.end(() => callback());
    },
  });
  let failure: unknown;
  let aborted = false;
  stream.on('error', (error) => {
    failure ??= error;
  });
  return {
    stream,
    async commit() {
      if (aborted) return inner.commit(); // the inner write reports ABORTED
      if (failure !== undefined) throw failure;
      if (!stream.writableEnded) stream.end();
      await finished(stream).catch((error) => {
        throw failure ?? error;
      });
      if (failure !== undefined) throw failure;
      await inner.commit();
    },
    abort: () => {
      aborted = true;
      stream.destroy();
      return inner.abort();
    },
  };
}
