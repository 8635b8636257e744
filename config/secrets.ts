// Resolves a secret reference ({ env } or { file }) at the moment a worker needs it. Errors name the
// reference, never a value.
import { readFile } from 'node:fs/promises';
import type { SecretRef } from '../core/config/schema';

export async function resolveSecret(
  ref: SecretRef,
  owner: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  if ('env' in ref) {
    const value = env[ref.env];
    if (value === undefined || value === '') {
      throw new Error(`${owner}: environment variable ${ref.env} is not set`);
    }
    return value;
  }
  try {
    return (await readFile(ref.file, 'utf8')).replace(/\r?\n$/, '');
  } catch (err) {
    throw new Error(
      `${owner}: secret file ${ref.file} cannot be read (${(err as NodeJS.ErrnoException).code})`,
    );
  }
}
