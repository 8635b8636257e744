// Which pollers of a pool's queues count as a live worker (pure logic of workers/pool-ownership.ts).
import { describe, expect, it } from 'vitest';
import { describeOwner, livePollers, parseIdentity, STALE_AFTER_MS } from '../../workers/pool-ownership';

const now = 1_000_000_000;
const self = { host: 'here', pid: 100, now, isAlive: (pid: number) => pid === 200 };
const poller = (identity: string, agoMs = 1_000) => ({
  identity,
  taskQueue: 'xcpb.pool.lab.ops',
  lastAccess: now - agoMs,
});

describe('livePollers', () => {
  it('a process of this host counts while it exists, whenever it last polled', () => {
    expect(livePollers([poller('200@here', STALE_AFTER_MS * 2)], self)).toHaveLength(1);
    expect(livePollers([poller('300@here')], self), 'a crashed predecessor').toEqual([]);
    expect(livePollers([poller('100@here')], self), 'our own pid: a predecessor in a container').toEqual([]);
  });

  it('a worker of another host counts until it has not polled for a while', () => {
    expect(livePollers([poller('7@elsewhere', 5_000)], self)).toHaveLength(1);
    expect(livePollers([poller('7@elsewhere', STALE_AFTER_MS + 1)], self)).toEqual([]);
    expect(livePollers([poller('custom identity', 5_000)], self)).toHaveLength(1);
  });

  it('names the other worker, its host and the queue', () => {
    expect(parseIdentity('42@backup-1.example')).toEqual({ pid: 42, host: 'backup-1.example' });
    expect(describeOwner('lab', poller('42@backup-1', 3_000), now)).toMatch(
      /^pool "lab" is already served by worker 42@backup-1 \(process 42 on host backup-1\), which polled xcpb\.pool\.lab\.ops 3 s ago/,
    );
  });
});
