// Every `xcpb` command answers --help with its usage and examples (exit 0), and a mistyped flag or
// command gets a suggestion (exit 2). Commands run as a user types them, as child processes.
import { describe, expect, it } from 'vitest';
import { COMMAND_NAMES } from '../../cli/main';
import { runXcpb } from '../helpers/cli';

const NESTED = [
  'server install',
  'server start',
  'server stop',
  'server status',
  'config validate',
  'config schema',
  'runs show',
  'backups list',
  'backups delete',
  'remotes test',
];

describe('xcpb --help', () => {
  it.each([...COMMAND_NAMES, ...NESTED])('xcpb %s --help: usage and examples, exit 0', async (command) => {
    const r = await runXcpb([...command.split(' '), '--help']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^usage: xcpb ${command.split(' ')[0]}`, 'im'));
    expect(r.stdout).toMatch(/Examples:\n {2}\$ xcpb /);
  });

  it('the top-level help lists every command', async () => {
    const r = await runXcpb(['--help']);
    expect(r.code).toBe(0);
    for (const name of COMMAND_NAMES) expect(r.stdout).toMatch(new RegExp(`^ {2}${name} `, 'm'));
  });

  it('a mistyped flag or command gets a suggestion and exit 2', async () => {
    const flag = await runXcpb(['runs', '--jbo', 'nightly']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/unknown option '--jbo'\n\(Did you mean --job\?\)/);
    const command = await runXcpb(['shedules']);
    expect(command.code).toBe(2);
    expect(command.stderr).toMatch(/unknown command 'shedules'\n\(Did you mean schedules\?\)/);
  });
});
