// The Temporal connection, in one place for every command, the worker and users' programs: address,
// namespace, TLS (server CA, client certificate and key, server name) and API key, taken from flags,
// then from Temporal's own environment variables (the names the `temporal` CLI reads), then from the
// config file's `temporal:` section, then from defaults. Secrets stay references until connect time.
import { readFile } from 'node:fs/promises';
import type { TLSConfig } from '@temporalio/client';
import { Client, Connection } from '@temporalio/client';
import { resolveSecret } from '../config/secrets';
import type { SecretRef, TemporalConnectionConfig } from '../core/config/schema';

export const DEFAULT_ADDRESS = 'localhost:7233';
export const DEFAULT_NAMESPACE = 'default';

/** Flags of a command (cli/connection-flags.ts): each one wins over the environment and the file. */
export interface ConnectionFlags {
  address?: string;
  namespace?: string;
  tls?: boolean;
  'tls-ca'?: string;
  'tls-cert'?: string;
  'tls-key'?: string;
  'tls-server-name'?: string;
  'api-key-file'?: string;
}

export interface TlsSettings {
  /** file of the server's CA; the system's CAs when absent */
  ca?: string;
  /** file of the client certificate (mTLS) */
  cert?: string;
  key?: SecretRef;
  serverName?: string;
}

/** Where and how to connect; no secret value in it (references only), so it can be printed. */
export interface TemporalTarget {
  address: string;
  namespace: string;
  /** undefined: plain gRPC */
  tls?: TlsSettings;
  apiKey?: SecretRef;
}

export interface TargetSources {
  flags?: ConnectionFlags;
  env?: NodeJS.ProcessEnv;
  /** the config file's `temporal:` section */
  config?: TemporalConnectionConfig;
  /** address of a local server recorded by `xcpb server start`, used when nothing else names one */
  recordedAddress?: string;
}

const envFlag = (v: string | undefined) =>
  v === undefined || v === '' ? undefined : !/^(0|false|no|off)$/i.test(v);

/** The connection settings from flags, TEMPORAL_* variables, the config section and defaults. */
export function resolveTarget(s: TargetSources = {}): TemporalTarget {
  const flags = s.flags ?? {};
  const env = s.env ?? process.env;
  const file = s.config ?? {};
  const ca = flags['tls-ca'] ?? (env.TEMPORAL_TLS_CA || undefined) ?? file.tls?.ca;
  const cert = flags['tls-cert'] ?? (env.TEMPORAL_TLS_CERT || undefined) ?? file.tls?.cert;
  const keyFile = flags['tls-key'] ?? (env.TEMPORAL_TLS_KEY || undefined);
  const key: SecretRef | undefined = keyFile ? { file: keyFile } : file.tls?.key;
  const serverName =
    flags['tls-server-name'] ?? (env.TEMPORAL_TLS_SERVER_NAME || undefined) ?? file.tls?.serverName;
  const apiKey: SecretRef | undefined = flags['api-key-file']
    ? { file: flags['api-key-file'] }
    : env.TEMPORAL_API_KEY
      ? { env: 'TEMPORAL_API_KEY' }
      : file.apiKey;
  // As the `temporal` CLI: TLS is on when asked for, or when any TLS setting or an API key is given
  // (an API key must not travel in clear), unless turned off explicitly.
  const explicit = flags.tls ?? envFlag(env.TEMPORAL_TLS);
  const implied = Boolean(ca || cert || key || serverName || apiKey || file.tls);
  const tlsOn = explicit ?? implied;
  return {
    address:
      flags.address ??
      (env.TEMPORAL_ADDRESS || undefined) ??
      file.address ??
      s.recordedAddress ??
      DEFAULT_ADDRESS,
    namespace:
      flags.namespace ?? (env.TEMPORAL_NAMESPACE || undefined) ?? file.namespace ?? DEFAULT_NAMESPACE,
    ...(tlsOn ? { tls: { ca, cert, key, serverName } } : {}),
    ...(apiKey ? { apiKey } : {}),
  };
}

/** Kept for programs written against the first API: flags and environment only. */
export function temporalTarget(
  flags: ConnectionFlags = {},
  env: NodeJS.ProcessEnv = process.env,
): TemporalTarget {
  return resolveTarget({ flags, env });
}

export class TemporalConnectionError extends Error {
  constructor(
    readonly target: TemporalTarget,
    message: string,
  ) {
    super(message);
    this.name = 'TemporalConnectionError';
  }
}

export interface SdkConnectionOptions {
  address: string;
  tls?: TLSConfig;
  apiKey?: string;
}

async function readSetting(file: string, what: string, target: TemporalTarget): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new TemporalConnectionError(
      target,
      `cannot connect to Temporal at ${target.address}: the ${what} file ${file} cannot be read (${(err as NodeJS.ErrnoException).code})`,
    );
  }
}

/** The SDK's connection options: certificate files read and secret references resolved now. */
export async function sdkConnectionOptions(target: TemporalTarget): Promise<SdkConnectionOptions> {
  const options: SdkConnectionOptions = { address: target.address };
  const t = target.tls;
  if (t) {
    if (Boolean(t.cert) !== Boolean(t.key))
      throw new TemporalConnectionError(
        target,
        `cannot connect to Temporal at ${target.address}: a client certificate needs both its certificate and its key (TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY, or --tls-cert and --tls-key)`,
      );
    options.tls = {
      ...(t.serverName ? { serverNameOverride: t.serverName } : {}),
      ...(t.ca ? { serverRootCACertificate: await readSetting(t.ca, 'server CA', target) } : {}),
    };
    if (t.cert && t.key) {
      const crt = await readSetting(t.cert, 'client certificate', target);
      const key = Buffer.from(await resolveSecret(t.key, 'temporal.tls.key').catch(fail(target)));
      options.tls.clientCertPair = { crt, key };
    }
  }
  if (target.apiKey)
    options.apiKey = await resolveSecret(target.apiKey, 'temporal.apiKey').catch(fail(target));
  return options;
}

const fail = (target: TemporalTarget) => (err: Error) => {
  throw new TemporalConnectionError(
    target,
    `cannot connect to Temporal at ${target.address}: ${err.message}`,
  );
};

/** One line saying what failed and what to check, naming the address. */
export function connectionFailure(target: TemporalTarget, err: unknown): TemporalConnectionError {
  if (err instanceof TemporalConnectionError) return err;
  const reason = ((err as Error)?.message ?? String(err)).replace(/\s+/g, ' ').trim();
  const where = `Temporal at ${target.address}${target.tls ? ' (TLS)' : ''}`;
  let hint: string;
  if (/certificate|handshake|tls|ssl|x509|alert|InvalidCertificate|UnknownIssuer|BadEncoding/i.test(reason)) {
    hint = target.tls
      ? 'check the server CA (--tls-ca / TEMPORAL_TLS_CA), the client certificate and key (--tls-cert, --tls-key) and the server name (--tls-server-name)'
      : 'the server may require TLS: give its CA with --tls-ca / TEMPORAL_TLS_CA (or --tls)';
  } else if (target.tls && /connection reset|closed|broken pipe|h2 protocol|frame/i.test(reason)) {
    hint =
      'the server may not speak TLS on this port (try without --tls), or rejected the client certificate';
  } else {
    hint =
      'is it running? start a local one with `xcpb server start`, or name yours with --address / TEMPORAL_ADDRESS';
  }
  return new TemporalConnectionError(target, `cannot connect to ${where}: ${reason}; ${hint}`);
}

/** A client for commands and programs. */
export async function connectClient(target: TemporalTarget): Promise<Client> {
  const options = await sdkConnectionOptions(target);
  let connection: Connection;
  try {
    // connect() calls getSystemInfo: a bad certificate or an unreachable server fails here.
    connection = await Connection.connect({ ...options, connectTimeout: '5s' });
  } catch (err) {
    throw connectionFailure(target, err);
  }
  return new Client({ connection, namespace: target.namespace });
}
