// The Temporal connection, in one place for every command, the worker and users' programs: address,
// namespace, TLS (server CA, client certificate and key, server name) and API key, taken from flags,
// then from Temporal's own environment variables (the names the `temporal` CLI reads), then from the
// config file's `temporal:` section, then from defaults. Secrets stay references until connect time.
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import type { TLSConfig } from '@temporalio/client';
import { Client, Connection } from '@temporalio/client';
import { resolveSecret } from '../config/secrets';
import type { SecretRef, TemporalConnectionConfig } from '../core/config/schema';

export const DEFAULT_ADDRESS = 'localhost:7233';
export const DEFAULT_NAMESPACE = 'default';

/** Flags of a command (cli/connection-flags.ts; --tls-ca is tlsCa): each wins over the environment and the file. */
export interface ConnectionFlags {
  address?: string;
  namespace?: string;
  tls?: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsServerName?: string;
  apiKeyFile?: string;
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
  const ca = flags.tlsCa ?? (env.TEMPORAL_TLS_CA || undefined) ?? file.tls?.ca;
  const cert = flags.tlsCert ?? (env.TEMPORAL_TLS_CERT || undefined) ?? file.tls?.cert;
  const keyFile = flags.tlsKey ?? (env.TEMPORAL_TLS_KEY || undefined);
  const key: SecretRef | undefined = keyFile ? { file: keyFile } : file.tls?.key;
  const serverName =
    flags.tlsServerName ?? (env.TEMPORAL_TLS_SERVER_NAME || undefined) ?? file.tls?.serverName;
  const apiKey: SecretRef | undefined = flags.apiKeyFile
    ? { file: flags.apiKeyFile }
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
export async function connectionFailure(
  target: TemporalTarget,
  err: unknown,
  options?: SdkConnectionOptions,
): Promise<TemporalConnectionError> {
  if (err instanceof TemporalConnectionError) return err;
  const sdkReason = ((err as Error)?.message ?? String(err)).replace(/\s+/g, ' ').trim();
  // The SDK says only "Failed to connect before the deadline" for every TLS problem: a handshake of
  // our own with the same settings tells which one it is.
  const found = options ? await diagnose(target, options) : undefined;
  const where = `Temporal at ${target.address}${target.tls ? ' (TLS)' : ''}`;
  return new TemporalConnectionError(target, `cannot connect to ${where}: ${found ?? sdkReason}`);
}

function hostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

async function diagnose(target: TemporalTarget, o: SdkConnectionOptions): Promise<string | undefined> {
  const { host, port } = hostPort(target.address);
  const tcp = await new Promise<string | undefined>((resolve) => {
    const socket = net.connect({ host, port, timeout: 3_000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve('no answer within 3 s');
    });
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
  if (tcp)
    return `nothing answers there (${tcp}); is the server running? start a local one with \`xcpb server start\`, or name yours with --address / TEMPORAL_ADDRESS`;
  const t = o.tls;
  const outcome = await new Promise<{ ok: boolean; code?: string; message?: string }>((resolve) => {
    const socket = tls.connect({
      host,
      port,
      servername: t?.serverNameOverride ?? (net.isIP(host) ? undefined : host),
      ca: t?.serverRootCACertificate ? Buffer.from(t.serverRootCACertificate) : undefined,
      cert: t?.clientCertPair ? Buffer.from(t.clientCertPair.crt) : undefined,
      key: t?.clientCertPair ? Buffer.from(t.clientCertPair.key) : undefined,
      ALPNProtocols: ['h2'],
      rejectUnauthorized: Boolean(t),
      checkServerIdentity: (name, cert) => tls.checkServerIdentity(t?.serverNameOverride ?? name, cert),
    });
    const done = (r: { ok: boolean; code?: string; message?: string }) => {
      socket.destroy();
      resolve(r);
    };
    // With TLS 1.3 a refused client certificate arrives as an alert just after the handshake.
    socket.once('secureConnect', () => setTimeout(() => done({ ok: true }), 500));
    socket.once('error', (e: NodeJS.ErrnoException) => done({ ok: false, code: e.code, message: e.message }));
    socket.setTimeout(5_000, () =>
      done({ ok: false, code: 'TIMEOUT', message: 'no TLS handshake within 5 s' }),
    );
  });
  const code = outcome.code ?? '';
  if (!t) {
    return outcome.ok || /ALERT/i.test(code)
      ? 'the server speaks TLS: give its CA with --tls-ca / TEMPORAL_TLS_CA (and a client certificate if it asks for one)'
      : undefined;
  }
  if (outcome.ok) return undefined;
  // OpenSSL's own text is a file-and-line dump: its code says the same in one word.
  const what = !outcome.message || /routines/.test(outcome.message) ? code : outcome.message;
  if (/ALTNAME|HOSTNAME|IP_ADDRESS/i.test(code + what))
    return `the server's certificate does not carry the name checked (${what}); name the one it carries with --tls-server-name / TEMPORAL_TLS_SERVER_NAME`;
  if (/CERT|SIGNATURE|ISSUER|SELF_SIGNED|VERIFY/i.test(code) && !/ALERT/i.test(code))
    return `the server's certificate is not signed by the CA given (${what}); check --tls-ca / TEMPORAL_TLS_CA`;
  if (/CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE/i.test(code) && !t.clientCertPair)
    return `the server requires a client certificate (${what}); give one with --tls-cert and --tls-key / TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY`;
  if (/ALERT/i.test(code))
    return `the server refused the client certificate (${what}); check --tls-cert and --tls-key / TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY`;
  if (/WRONG_VERSION|PACKET_LENGTH|UNEXPECTED|ECONNRESET/i.test(code + what))
    return `the server does not speak TLS on this port (${what}); connect without --tls`;
  return `TLS failed: ${what}`;
}

/** A client for commands and programs. */
export async function connectClient(target: TemporalTarget): Promise<Client> {
  const options = await sdkConnectionOptions(target);
  let connection: Connection;
  try {
    // connect() calls getSystemInfo: a bad certificate or an unreachable server fails here.
    connection = await Connection.connect({ ...options, connectTimeout: '5s' });
  } catch (err) {
    throw await connectionFailure(target, err, options);
  }
  return new Client({ connection, namespace: target.namespace });
}
