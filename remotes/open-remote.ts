// Remote URL → Remote. Only file:// exists today; nfs://, smb:// (mounted) and s3:// will add cases.
import { fileURLToPath } from 'node:url';
import { createLocalRemote } from './local';
import { type Remote, RemoteError } from './remote';

export interface RemoteConfig {
  id: string;
  url: string;
}

export function openRemote({ id, url }: RemoteConfig): Remote {
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
  throw new RemoteError(
    id,
    '',
    'UNSUPPORTED',
    `unsupported remote URL scheme ${JSON.stringify(parsed.protocol.replace(/:$/, ''))} (supported: file)`,
  );
}
