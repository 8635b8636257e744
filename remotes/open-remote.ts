// Remote config → Remote: file:// (a local folder), smb:// and nfs:// (mounted by this process), s3://, then encryption when the
// config has an encryptionKey. Secrets (S3 secret key, encryption key) are references resolved on
// first use, in the process that uses them; the Remote never holds the config's secret values.
import { fileURLToPath } from 'node:url';
import { resolveSecret } from '../config/secrets';
import type { RemoteConfig as FullRemoteConfig } from '../core/config/schema';
import { withEncryption } from './encrypted';
import { createLocalRemote } from './local';
import { createMountedRemote, type MountedRemote } from './mounted';
import { type Remote, RemoteError } from './remote';
import { createS3Remote } from './s3';

/** id and url are enough for a plain local folder; the rest as in the config file. */
export type RemoteConfig = Pick<FullRemoteConfig, 'id' | 'url'> & Partial<FullRemoteConfig>;

export interface OpenRemoteOptions {
  /** Where smb:// and nfs:// shares are mounted (`<state dir>/mounts`); required for them. */
  mountRoot?: string;
}

export function openRemote(config: RemoteConfig, options: OpenRemoteOptions = {}): Remote {
  const remote = openPlain(config, options);
  const key = config.encryptionKey;
  if (key === undefined) return remote;
  const encrypted = withEncryption(remote, () => resolveSecret(key, `remotes.${config.id}.encryptionKey`));
  // A mounted share stays unmountable through its encryption.
  return 'unmount' in remote
    ? Object.assign(encrypted, { unmount: (remote as MountedRemote).unmount })
    : encrypted;
}

function openPlain(config: RemoteConfig, options: OpenRemoteOptions): Remote {
  const { id, url } = config;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new RemoteError(id, '', 'UNSUPPORTED', `invalid remote URL ${JSON.stringify(url)}`, { cause });
  }
  if (parsed.protocol === 'file:') {
    if (parsed.host !== '' && parsed.host !== 'localhost') {
      throw new RemoteError(
        id,
        '',
        'UNSUPPORTED',
        `file:// URL with a host (${parsed.host}) is not a local path`,
      );
    }
    return createLocalRemote({ id, root: fileURLToPath(parsed), url });
  }
  if (parsed.protocol === 's3:') {
    const { accessKeyId, secretAccessKey } = config;
    if (accessKeyId === undefined || secretAccessKey === undefined) {
      throw new RemoteError(id, '', 'UNSUPPORTED', 'an s3:// remote needs accessKeyId and secretAccessKey');
    }
    return createS3Remote({
      id,
      url,
      region: config.region,
      protocol: config.protocol,
      allowUnauthorized: config.allowUnauthorized,
      pathStyle: config.pathStyle,
      credentials: async () => ({
        accessKeyId,
        secretAccessKey: await resolveSecret(secretAccessKey, `remotes.${id}.secretAccessKey`),
      }),
    });
  }
  if (parsed.protocol === 'smb:' || parsed.protocol === 'nfs:') {
    if (options.mountRoot === undefined)
      throw new RemoteError(
        id,
        '',
        'UNSUPPORTED',
        `${parsed.protocol}// remotes are mounted by a worker (no mount folder given)`,
      );
    const password = config.password;
    return createMountedRemote(
      {
        id,
        url,
        domain: config.domain,
        username: config.username,
        password: password && (() => resolveSecret(password, `remotes.${id}.password`)),
        mountOptions: config.mountOptions,
      },
      options.mountRoot,
    );
  }
  throw new RemoteError(
    id,
    '',
    'UNSUPPORTED',
    `unsupported remote URL scheme ${JSON.stringify(parsed.protocol.replace(/:$/, ''))} (supported: file, s3, smb, nfs)`,
  );
}
