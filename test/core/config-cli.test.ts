import { describe, expect, it } from 'vitest';
import { runXcpb } from '../helpers/cli';

describe('xcpb config', () => {
  it('validate prints ok for the example', async () => {
    const r = await runXcpb(['config', 'validate', 'examples/config.yaml']);
    expect(r).toMatchObject({ code: 0, stdout: 'ok\n' });
  });

  it('schema prints a JSON Schema that knows the modes and the secret references', async () => {
    const r = await runXcpb(['config', 'schema']);
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout);
    const job = schema.properties.jobs.items;
    expect(job.properties.mode.enum).toEqual(['snapshot', 'full', 'delta']);
    expect(job.properties.srs.items.required).toEqual(['pool', 'sr']);
    expect(JSON.stringify(schema.properties.pools.items.properties.password)).toContain('"env"');
  });
});
