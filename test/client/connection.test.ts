// Where the Temporal connection settings come from: flags, then Temporal's own variables, then the
// config file's `temporal:` section, then the address `xcpb server start` recorded, then defaults.
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveTarget, sdkConnectionOptions, TemporalConnectionError } from '../../client/connect';
import { validateConfig } from '../../core/config/validate';

describe('resolveTarget', () => {
  it('defaults to the local server and the default namespace, in plain gRPC', () => {
    expect(resolveTarget({ env: {} })).toEqual({ address: 'localhost:7233', namespace: 'default' });
    expect(resolveTarget({ env: {}, recordedAddress: '127.0.0.1:17233' }).address).toBe('127.0.0.1:17233');
  });

  it('flags win over variables, variables over the config section, the section over the recorded address', () => {
    const config = { address: 'file:1', namespace: 'file-ns', tls: { ca: '/file/ca.pem' } };
    const env = { TEMPORAL_ADDRESS: 'env:1', TEMPORAL_TLS_CA: '/env/ca.pem' };
    const all = { env, config, recordedAddress: 'rec:1' };
    expect(resolveTarget(all)).toMatchObject({
      address: 'env:1',
      namespace: 'file-ns',
      tls: { ca: '/env/ca.pem' },
    });
    expect(resolveTarget({ ...all, flags: { address: 'flag:1', tlsCa: '/flag/ca.pem' } })).toMatchObject({
      address: 'flag:1',
      tls: { ca: '/flag/ca.pem' },
    });
    expect(resolveTarget({ env: {}, config, recordedAddress: 'rec:1' }).address).toBe('file:1');
  });

  it("reads the `temporal` CLI's variables; a key or an API key is kept as a reference, not a value", () => {
    const t = resolveTarget({
      env: {
        TEMPORAL_ADDRESS: 'temporal.example:7233',
        TEMPORAL_NAMESPACE: 'backups',
        TEMPORAL_TLS_CERT: '/c.pem',
        TEMPORAL_TLS_KEY: '/k.pem',
        TEMPORAL_TLS_SERVER_NAME: 'frontend',
        TEMPORAL_API_KEY: 'the-key-itself',
      },
    });
    expect(t).toEqual({
      address: 'temporal.example:7233',
      namespace: 'backups',
      tls: { ca: undefined, cert: '/c.pem', key: { file: '/k.pem' }, serverName: 'frontend' },
      apiKey: { env: 'TEMPORAL_API_KEY' },
    });
    expect(JSON.stringify(t)).not.toContain('the-key-itself');
  });

  it('an API key turns TLS on unless TLS is turned off explicitly', () => {
    expect(resolveTarget({ env: { TEMPORAL_API_KEY: 'k' } }).tls).toBeDefined();
    expect(resolveTarget({ env: { TEMPORAL_API_KEY: 'k', TEMPORAL_TLS: 'false' } }).tls).toBeUndefined();
    expect(resolveTarget({ env: { TEMPORAL_API_KEY: 'k' }, flags: { tls: false } }).tls).toBeUndefined();
    expect(resolveTarget({ env: { TEMPORAL_TLS: 'true' } }).tls).toEqual({});
  });

  it('the config section accepts secret references only for the key and the API key', () => {
    const ok = validateConfig({
      temporal: {
        address: 'x:7233',
        tls: { ca: '/ca.pem', cert: '/c.pem', key: { file: '/k' } },
        apiKey: { env: 'K' },
      },
    });
    expect(ok.ok).toBe(true);
    const bad = validateConfig({ temporal: { apiKey: 'plain-text' } });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.problems[0]).toMatchObject({ path: 'temporal.apiKey' });
  });
});

describe('sdkConnectionOptions', () => {
  it('reads the certificate files and resolves the key and API key references', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'xcpb-conn-'));
    for (const f of ['ca.pem', 'c.pem', 'k.pem', 'api']) await writeFile(path.join(dir, f), `${f} bytes\n`);
    const o = await sdkConnectionOptions({
      address: 'h:1',
      namespace: 'n',
      tls: {
        ca: path.join(dir, 'ca.pem'),
        cert: path.join(dir, 'c.pem'),
        key: { file: path.join(dir, 'k.pem') },
      },
      apiKey: { file: path.join(dir, 'api') },
    });
    expect(Buffer.from(o.tls!.serverRootCACertificate!).toString()).toBe('ca.pem bytes\n');
    expect(Buffer.from(o.tls!.clientCertPair!.key).toString()).toBe('k.pem bytes');
    expect(o.apiKey).toBe('api bytes');
  });

  it('a missing file or an unset variable is an error naming the address and the setting', async () => {
    await expect(
      sdkConnectionOptions({ address: 'h:1', namespace: 'n', tls: { ca: '/nonexistent/ca.pem' } }),
    ).rejects.toThrow(
      'cannot connect to Temporal at h:1: the server CA file /nonexistent/ca.pem cannot be read (ENOENT)',
    );
    await expect(
      sdkConnectionOptions({ address: 'h:1', namespace: 'n', apiKey: { env: 'XCPB_UNSET_VARIABLE' } }),
    ).rejects.toThrow(TemporalConnectionError);
    await expect(
      sdkConnectionOptions({ address: 'h:1', namespace: 'n', tls: { cert: '/c.pem' } }),
    ).rejects.toThrow(/needs both its certificate and its key/);
  });
});
