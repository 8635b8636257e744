import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PoolState } from '../pool';
import { sendHtmlError } from './util';

export async function handleImportXva(
  _pool: PoolState,
  _req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  sendHtmlError(res, 500, 'XVA import not available yet');
}
