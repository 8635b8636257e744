// The start contract of backupJob and restoreVm (core/start-contract.ts): the minimal input gets
// the config's defaults, a bad one is refused naming the field, and the JSON Schemas checked in
// under docs/schemas/ are the ones the code generates.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { Job } from '../../core/config/schema';
import { jobInput } from '../../core/job-input';
import { JSON_SCHEMA_NAMES, jsonSchemaText } from '../../core/json-schemas';
import { BackupJobInputSchema, parseStartInput, RestoreInputSchema } from '../../core/start-contract';
import { repoRoot } from '../helpers/cli';

const minimal = { job: { id: 'x', mode: 'delta', vms: { pools: ['demo'] }, remotes: ['local'] } };

function refusal(
  raw: unknown,
  schema: typeof BackupJobInputSchema | typeof RestoreInputSchema = BackupJobInputSchema,
) {
  try {
    parseStartInput('backupJob', schema, raw);
  } catch (err) {
    return err as ApplicationFailure;
  }
  throw new Error('accepted');
}

describe('backupJob input', () => {
  it('the minimal input gets the same defaults as a job of the config file', () => {
    const parsed = parseStartInput('backupJob', BackupJobInputSchema, minimal);
    expect(parsed).toEqual(jobInput(Job.parse(minimal.job)));
    expect(parsed.job).toMatchObject({
      compression: 'zstd',
      snapshotMode: 'normal',
      concurrency: 2,
      chainWait: { interval: '5m', maximum: '1h' },
      vms: { pools: ['demo'], powerState: 'any' },
    });
    expect(parsed).toMatchObject({
      retention: { remote: 0, snapshot: 0 },
      copyRetention: 0,
      timezone: 'UTC',
    });
  });

  it('an input from before copyRetention (retention.replica, as older schedules hold) runs as copyRetention', () => {
    const old = { ...minimal, retention: { remote: 2, snapshot: 1, replica: 3 } };
    expect(parseStartInput('backupJob', BackupJobInputSchema, old)).toMatchObject({
      retention: { remote: 2, snapshot: 1 },
      copyRetention: 3,
    });
    expect(
      parseStartInput('backupJob', BackupJobInputSchema, { ...old, copyRetention: 4 }).copyRetention,
      'copyRetention, when given, wins',
    ).toBe(4);
  });

  it('what the typed client sends (jobInput of a config job) passes unchanged', () => {
    const job = Job.parse({
      ...minimal.job,
      schedules: [{ id: 'd', cron: '0 3 * * *', retention: { remote: 3 } }],
    });
    const input = jobInput(job, job.schedules[0]);
    expect(parseStartInput('backupJob', BackupJobInputSchema, input)).toEqual(input);
  });

  it('a misspelt mode fails naming job.mode, non-retryable, with the problems in the details', () => {
    const err = refusal({ job: { ...minimal.job, mode: 'fulll' } });
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: 'XcpbInvalidInput', nonRetryable: true });
    expect(err.message).toMatch(/^invalid backupJob input: job\.mode: /);
    expect(err.details?.[0]).toEqual([{ path: 'job.mode', message: expect.stringContaining('"delta"') }]);
  });

  it('each bad field is named: missing job, unknown key, bad nested value', () => {
    expect(refusal({}).message).toMatch(/: job: /);
    expect(refusal({ job: { ...minimal.job, colour: 'red' } }).message).toMatch(/job: .*colour/);
    expect(refusal({ ...minimal, retention: { remote: -1 } }).message).toMatch(/retention\.remote: /);
    expect(refusal({ job: { ...minimal.job, vms: { uuids: ['a'], tags: ['b'] } } }).message).toMatch(
      /job\.vms: an explicit VM list/,
    );
  });
});

describe('restoreVm input', () => {
  it('fills start and newMacAddresses; a malformed backup id is refused naming backupId', () => {
    const ok = {
      backupId: 'nas:3f2b0c4e-1111-2222-3333-444455556666/20260115T020000Z',
      poolId: 'lab',
      sr: 'Local',
    };
    expect(parseStartInput('restoreVm', RestoreInputSchema, ok)).toEqual({
      ...ok,
      start: false,
      newMacAddresses: false,
    });
    const err = refusal({ ...ok, backupId: 'nope' }, RestoreInputSchema);
    expect(err.message).toMatch(/backupId: invalid backup id "nope"/);
  });
});

describe('JSON Schemas', () => {
  it.each(JSON_SCHEMA_NAMES)(
    'docs/schemas/%s.json is current (regenerate: xcpb schema <name> > docs/schemas/<name>.json)',
    async (name) => {
      const checkedIn = await readFile(path.join(repoRoot, 'docs/schemas', `${name}.json`), 'utf8');
      expect(checkedIn).toBe(jsonSchemaText(name));
    },
  );

  it('the backup-job-input schema requires only job, and in job only id, mode, vms', () => {
    const schema = JSON.parse(jsonSchemaText('backup-job-input'));
    expect(schema.required).toEqual(['job']);
    expect(schema.properties.job.required.sort()).toEqual(['id', 'mode', 'vms']);
  });
});
