// The fan-out that feeds one export to every target: a source that breaks, before or while it is
// read, fails the transfer and publishes nothing anywhere (never a wait for ever).
import { mkdtemp, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, pipeline, Readable, Transform } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { remoteSink, writeToSinks } from '../../activities/fan-out';
import { createLocalRemote } from '../../remotes/local';

async function twoSinks() {
  const dirs = await Promise.all([0, 1].map(() => mkdtemp(path.join(os.tmpdir(), 'xcpb-fanout-'))));
  const sinks = dirs.map((root, i) => remoteSink(createLocalRemote({ id: `r${i}`, root }), 'disk.vhd'));
  return { dirs, sinks };
}

/** A source like an export behind a transform (reidentify): pipeline() destroys the transform when its input breaks. */
function brokenBehindTransform(): Readable {
  const input = new PassThrough();
  const out = new Transform({ transform: (c, _e, cb) => cb(null, c) });
  pipeline(input, out, () => {});
  input.write(Buffer.alloc(1024, 1));
  input.destroy(new Error('export cut'));
  return out;
}

describe('writeToSinks', () => {
  it('a source already broken before the pump starts fails the transfer; no file is published', async () => {
    const { dirs, sinks } = await twoSinks();
    const source = brokenBehindTransform();
    await new Promise((r) => setImmediate(r)); // the error happens while the sinks would be opening
    expect(source.destroyed).toBe(true);
    await expect(writeToSinks(source, sinks)).rejects.toThrow(/export cut/);
    for (const d of dirs) expect(await readdir(d)).toEqual([]);
  });

  it('a source that breaks while it is read fails the transfer; no file is published', async () => {
    const { dirs, sinks } = await twoSinks();
    const source = new PassThrough();
    const done = writeToSinks(source, sinks);
    source.write(Buffer.alloc(64 * 1024, 2));
    setTimeout(() => source.destroy(new Error('cut mid-way')), 20);
    await expect(done).rejects.toThrow(/cut mid-way/);
    for (const d of dirs) expect(await readdir(d)).toEqual([]);
  });

  it('a whole source reaches every target', async () => {
    const { dirs, sinks } = await twoSinks();
    const result = await writeToSinks(Readable.from([Buffer.alloc(3000, 3), Buffer.alloc(5000, 4)]), sinks);
    expect(result.bytes).toBe(8000);
    expect(result.targets.map((t) => t.ok)).toEqual([true, true]);
    for (const d of dirs) expect(await readdir(d)).toEqual(['disk.vhd']);
  });
});
