import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import {
  chainBlockSource,
  checkVhdFile,
  createVhdStream,
  DiskType,
  mergeVhdIntoParent,
  openRawBlockSource,
  openVhdChain,
  openVhdFile,
  resolveParentPath,
  VHD_BLOCK_SIZE,
  VhdError,
  writeRawFile,
} from '../formats/vhd';
import { passThrough, type Register } from './program';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

const stdio: CliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

const USAGE = `usage: xcpb vhd <command>
  info <file> [--json]       footer, header, parent and blocks of a VHD
  check <file>               exit 0 if the VHD (and its parents) are sound, else 1 with the problem
  to-raw <file> <out>        the disk a VHD chain describes, as a raw (sparse) image
  from-raw <raw> <out.vhd>   a dynamic VHD of the non-zero 2 MiB blocks of a raw image
  merge <child.vhd>          merge a differencing VHD into its parent (crash-safe, resumable)
`;

const TYPES: Record<number, string> = {
  [DiskType.fixed]: 'fixed',
  [DiskType.dynamic]: 'dynamic',
  [DiskType.differencing]: 'differencing',
};

class UsageError extends Error {}

/** `xcpb vhd …`: returns the exit code (0 ok, 1 problem found / failure, 2 usage). */
export async function vhdCommand(argv: string[], io: CliIo = stdio): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    switch (sub) {
      case 'info':
        return await info(rest, io);
      case 'check':
        return await check(rest, io);
      case 'to-raw':
        return await toRaw(rest, io);
      case 'from-raw':
        return await fromRaw(rest, io);
      case 'merge':
        return await merge(rest, io);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        io.out(USAGE);
        return sub === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(sub)}`);
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      io.err(`xcpb vhd: ${(e as Error).message}\n${USAGE}`);
      return 2;
    }
    if (e instanceof VhdError) {
      io.err(`xcpb vhd ${sub}: ${e.message}\n`);
      return 1;
    }
    io.err(`xcpb vhd ${sub}: ${(e as Error).message ?? e}\n`);
    return 1;
  }
}

function positionals(
  args: string[],
  n: number,
  names: string,
  options: Record<string, { type: 'boolean' }> = {},
) {
  const parsed = parseArgs({ args, allowPositionals: true, options, strict: true });
  if (parsed.positionals.length !== n) throw new UsageError(`expected ${names}`);
  return parsed;
}

async function info(args: string[], io: CliIo): Promise<number> {
  const {
    positionals: [file],
    values,
  } = positionals(args, 1, '<file>', { json: { type: 'boolean' } });
  const f = await openVhdFile(file);
  try {
    let parentPath: string | undefined;
    let parentProblem: string | undefined;
    if (f.diskType === DiskType.differencing) {
      try {
        parentPath = await resolveParentPath(f);
      } catch (e) {
        if (!(e instanceof VhdError)) throw e;
        parentProblem = e.problem;
      }
    }
    const blocks = f.blocks();
    const report = {
      file: path.resolve(file),
      fileSize: f.fileSize,
      diskType: TYPES[f.diskType],
      uuid: f.uuid,
      virtualSize: f.size,
      footer: {
        ...f.footer,
        timestamp: f.footer.timestamp.toISOString(),
        checksum: `0x${f.footer.checksum.toString(16).padStart(8, '0')}`,
      },
      header: f.header && {
        tableOffset: f.header.tableOffset,
        maxTableEntries: f.header.maxTableEntries,
        blockSize: f.header.blockSize,
        checksum: `0x${f.header.checksum.toString(16).padStart(8, '0')}`,
        parentLocators: f.header.parentLocators,
      },
      parent:
        f.diskType === DiskType.differencing
          ? {
              uuid: f.header!.parentUuid,
              name: f.header!.parentUnicodeName,
              timestamp: f.header!.parentTimestamp.toISOString(),
              path: parentPath,
              problem: parentProblem,
            }
          : undefined,
      blocks: {
        allocated: blocks.length,
        total: Math.ceil(f.size / VHD_BLOCK_SIZE),
        indexes: blocks,
      },
    };
    if (values.json) {
      io.out(`${JSON.stringify(report, null, 2)}\n`);
      return 0;
    }
    const lines = [
      `file          ${report.file} (${report.fileSize} bytes)`,
      `type          ${report.diskType}`,
      `uuid          ${report.uuid}`,
      `virtual size  ${report.virtualSize} bytes (${(report.virtualSize / 2 ** 30).toFixed(3)} GiB)`,
      `created       ${report.footer.timestamp} by "${f.footer.creatorApplication}"`,
      `geometry      C/H/S ${f.footer.geometry.cylinders}/${f.footer.geometry.heads}/${f.footer.geometry.sectorsPerTrack}`,
    ];
    if (f.header) {
      lines.push(
        `BAT           ${f.header.maxTableEntries} entries at ${f.header.tableOffset}, block size ${f.header.blockSize}`,
      );
    }
    lines.push(`blocks        ${blocks.length} allocated${blocks.length ? ` (${summarize(blocks)})` : ''}`);
    if (report.parent) {
      lines.push(
        `parent        ${report.parent.name} uuid ${report.parent.uuid}`,
        `              ${report.parent.path ?? `NOT FOUND: ${report.parent.problem}`}`,
      );
    }
    io.out(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    await f.close();
  }
}

/** "0-3,7,9-10" */
function summarize(blocks: number[]): string {
  const parts: string[] = [];
  let start = blocks[0];
  let prev = blocks[0];
  for (const b of [...blocks.slice(1), Number.NaN]) {
    if (b === prev + 1) {
      prev = b;
      continue;
    }
    parts.push(start === prev ? `${start}` : `${start}-${prev}`);
    start = b;
    prev = b;
  }
  const s = parts.join(',');
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

async function check(args: string[], io: CliIo): Promise<number> {
  const {
    positionals: [file],
  } = positionals(args, 1, '<file>');
  await checkVhdFile(file);
  const chain = await openVhdChain(file);
  const paths = chain.files.map((f) => f.path);
  await chain.close();
  // every ancestor gets the same deeper checks as the file itself
  for (const p of paths.slice(1)) await checkVhdFile(p);
  const n = paths.length;
  io.out(`${file}: ok${n > 1 ? ` (chain of ${n} files)` : ''}\n`);
  return 0;
}

async function toRaw(args: string[], io: CliIo): Promise<number> {
  const {
    positionals: [file, out],
  } = positionals(args, 2, '<file> <out>');
  const chain = await openVhdChain(file);
  try {
    await writeRawFile(chainBlockSource(chain), out);
  } finally {
    await chain.close();
  }
  io.out(`${out}: ${chain.size} bytes from a chain of ${chain.files.length} file(s)\n`);
  return 0;
}

async function fromRaw(args: string[], io: CliIo): Promise<number> {
  const {
    positionals: [raw, out],
  } = positionals(args, 2, '<raw> <out.vhd>');
  const src = await openRawBlockSource(raw);
  const tmp = path.join(path.dirname(out), `.${path.basename(out)}.${process.pid}.tmp`);
  try {
    await pipeline(createVhdStream(src), createWriteStream(tmp));
    await rename(tmp, out);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  } finally {
    await src.close();
  }
  io.out(`${out}: dynamic VHD, ${src.size} bytes, ${src.blocks.length} blocks\n`);
  return 0;
}

async function merge(args: string[], io: CliIo): Promise<number> {
  const {
    positionals: [child],
  } = positionals(args, 1, '<child.vhd>');
  let lastPct = -1;
  await mergeVhdIntoParent(child, {
    onProgress: (done, total) => {
      const pct = total === 0 ? 100 : Math.floor((done / total) * 100);
      if (pct !== lastPct && (pct % 10 === 0 || pct === 100))
        io.err(`merging: ${pct}% (${done}/${total} blocks)\n`);
      lastPct = pct;
    },
  });
  io.out(`${child}: merged into its parent\n`);
  return 0;
}

export const registerVhd: Register = (program) => {
  passThrough(
    program,
    'vhd',
    'inspect, check and convert VHD files',
    USAGE,
    (argv) => vhdCommand(argv),
    'xcpb vhd info disk.vhd --json',
    'xcpb vhd check 20260115T020000Z.vhd',
    'xcpb vhd to-raw tip.vhd disk.raw',
  );
};
