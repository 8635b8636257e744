// Reads a configuration file from disk and checks it. Every failure is a list of problems, never a
// throw, so the CLI can print them all and exit 2.
import { readFile } from 'node:fs/promises';
import { type ConfigResult, parseConfigText } from '../core/config/validate';

export async function loadConfigFile(file: string): Promise<ConfigResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'file does not exist' : `cannot be read (${code ?? (err as Error).message})`;
    return { ok: false, problems: [{ path: '', message: `${file}: ${why}` }] };
  }
  return parseConfigText(text);
}

export class ConfigFileError extends Error {
  constructor(
    readonly file: string,
    readonly details: string,
  ) {
    super(`invalid configuration ${file}:\n${details}`);
  }
}
