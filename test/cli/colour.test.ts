// Colour only on a terminal, never with NO_COLOR, nor in a pipe when a CI variable is set (which
// picocolors alone would colour); FORCE_COLOR forces it. Checked on the rule and on a real command.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { colourWanted } from '../../cli/output';
import { runXcpb } from '../helpers/cli';

const ESC = '\u001b[';
let dir: string;
let config: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-colour-'));
  config = path.join(dir, 'config.json');
  await writeFile(config, JSON.stringify({ remotes: [{ id: 'nas', url: `file://${dir}` }] }));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('colour', () => {
  it('on a terminal only, off with NO_COLOR, forced by FORCE_COLOR', () => {
    const tty = { isTTY: true };
    expect(colourWanted(tty, {})).toBe(true);
    expect(colourWanted(tty, { NO_COLOR: '1' })).toBe(false);
    expect(colourWanted(tty, { TERM: 'dumb' })).toBe(false);
    expect(colourWanted({}, {})).toBe(false);
    expect(colourWanted({}, { CI: 'true' })).toBe(false);
    expect(colourWanted({}, { FORCE_COLOR: '1' })).toBe(true);
    expect(colourWanted(tty, { FORCE_COLOR: '0' })).toBe(false);
  });

  it('a command piped in CI prints no colour codes; FORCE_COLOR brings them', async () => {
    const args = ['remotes', 'test', 'nas', '--config', config, '--size', '1'];
    const piped = await runXcpb(args, { NO_COLOR: undefined, CI: 'true' });
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout).toMatch(/write +ok/);
    expect(piped.stdout).not.toContain(ESC);
    const forced = await runXcpb(args, { NO_COLOR: undefined, FORCE_COLOR: '1' });
    expect(forced.stdout).toContain(ESC);
  });
});
