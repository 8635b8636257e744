// LVM2 physical volumes: the label (one of the first 4 sectors), the PV header, the metadata area
// and its text metadata (the VG description), then linear logical volumes as devices over the PVs.
// Our own code, from the LVM2 on-disk format (lib/format_text/layout.h in LVM2's sources).
// Striped (more than one stripe), mirrored, RAID, thin and cache volumes are reported by name.
import { type BlockDevice, concatDevice } from './device';

const SECTOR = 512;

export interface LvmPv {
  uuid: string;
  device: BlockDevice;
  /** Metadata text of the most recent metadata area. */
  metadata?: string;
}

async function findLabel(dev: BlockDevice): Promise<{ sector: number; buf: Buffer } | undefined> {
  for (let s = 0; s < 4 && (s + 1) * SECTOR <= dev.size; s++) {
    const buf = await dev.read(s * SECTOR, SECTOR);
    if (buf.toString('latin1', 0, 8) === 'LABELONE' && buf.toString('latin1', 24, 32) === 'LVM2 001') {
      return { sector: s, buf };
    }
  }
  return undefined;
}

export async function isLvmPhysicalVolume(dev: BlockDevice): Promise<boolean> {
  return (await findLabel(dev)) !== undefined;
}

export class LvmError extends Error {
  override readonly name = 'LvmError';
}

/** Reads the PV header and the current metadata text of a physical volume. */
export async function readPv(dev: BlockDevice): Promise<LvmPv> {
  const label = await findLabel(dev);
  if (!label) throw new LvmError('not an LVM2 physical volume');
  const o = label.buf.readUInt32LE(20);
  const h = label.buf;
  if (o + 40 > SECTOR) throw new LvmError('LVM label: PV header offset out of the sector');
  const uuid = h.toString('latin1', o, o + 32);
  let p = o + 40; // after uuid and device size
  const readList = () => {
    const list: { offset: number; size: number }[] = [];
    for (; p + 16 <= SECTOR; p += 16) {
      const offset = Number(h.readBigUInt64LE(p));
      const size = Number(h.readBigUInt64LE(p + 8));
      if (offset === 0) {
        p += 16;
        break;
      }
      list.push({ offset, size });
    }
    return list;
  };
  readList(); // data areas (pe_start in the metadata says where extents begin)
  const mdas = readList();
  let metadata: string | undefined;
  for (const mda of mdas) {
    if (mda.offset + SECTOR > dev.size) throw new LvmError('LVM metadata area is past the end of the device');
    const mh = await dev.read(mda.offset, SECTOR);
    if (mh.toString('latin1', 4, 20) !== ' LVM2 x[5A%r0N*>')
      throw new LvmError('LVM metadata area header has a bad magic');
    const at = Number(mh.readBigUInt64LE(40));
    const size = Number(mh.readBigUInt64LE(48));
    if (size === 0) continue;
    const areaSize = mda.size;
    if (size > areaSize || at >= areaSize) throw new LvmError('LVM metadata location outside its area');
    // The metadata area is a ring after its first sector: text may wrap to the start.
    const first = Math.min(size, areaSize - at);
    const parts = [await dev.read(mda.offset + at, first)];
    if (first < size) parts.push(await dev.read(mda.offset + SECTOR, size - first));
    metadata = Buffer.concat(parts).toString('utf8').replace(/\0+$/, '');
    break;
  }
  return { uuid, device: dev, ...(metadata ? { metadata } : {}) };
}

export type LvmValue = string | number | LvmValue[] | LvmSection;
export interface LvmSection {
  [key: string]: LvmValue;
}

/** Parses LVM2's text format (`key = value`, `name { … }`, lists, "strings", # comments). */
export function parseLvmText(text: string): LvmSection {
  const tokens = text.match(/"(?:\\.|[^"\\])*"|[{}[\]=,]|[^\s{}[\]=,"#]+|#[^\n]*/g) ?? [];
  let i = 0;
  const toks = tokens.filter((t) => !t.startsWith('#'));
  const value = (): LvmValue => {
    const t = toks[i++];
    if (t === undefined) throw new LvmError('LVM metadata: unexpected end');
    if (t === '[') {
      const list: LvmValue[] = [];
      while (toks[i] !== ']') {
        if (toks[i] === undefined) throw new LvmError('LVM metadata: unterminated list');
        list.push(value());
        if (toks[i] === ',') i++;
      }
      i++;
      return list;
    }
    if (t.startsWith('"')) return t.slice(1, -1).replace(/\\(.)/g, '$1');
    const n = Number(t);
    return Number.isNaN(n) ? t : n;
  };
  const section = (top: boolean): LvmSection => {
    const out: LvmSection = {};
    while (i < toks.length) {
      const key = toks[i++];
      if (key === '}') {
        if (top) throw new LvmError('LVM metadata: unbalanced }');
        return out;
      }
      const op = toks[i++];
      if (op === '=') out[key] = value();
      else if (op === '{') out[key] = section(false);
      else throw new LvmError(`LVM metadata: unexpected ${JSON.stringify(op)} after ${JSON.stringify(key)}`);
    }
    if (!top) throw new LvmError('LVM metadata: unterminated section');
    return out;
  };
  return section(true);
}

export interface LogicalVolume {
  /** "vg/lv" */
  id: string;
  size: number;
  /** "linear", or the unsupported segment type ("striped (2 stripes)", "thin"…). */
  kind: string;
  device?: BlockDevice;
  problem?: string;
}

const isSection = (v: LvmValue | undefined): v is LvmSection =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Logical volumes of the volume groups found on these physical volumes. */
export async function readLvmVolumes(devices: BlockDevice[]): Promise<LogicalVolume[]> {
  const pvs = await Promise.all(devices.map(readPv));
  const byUuid = new Map(pvs.map((p) => [p.uuid, p]));
  const out: LogicalVolume[] = [];
  const seenVg = new Set<string>();
  for (const pv of pvs) {
    if (!pv.metadata) continue;
    const top = parseLvmText(pv.metadata);
    for (const [vgName, vg] of Object.entries(top)) {
      if (!isSection(vg) || seenVg.has(vgName)) continue;
      seenVg.add(vgName);
      const extent = Number(vg.extent_size) * SECTOR;
      const pvSections = isSection(vg.physical_volumes) ? vg.physical_volumes : {};
      const lvs = isSection(vg.logical_volumes) ? vg.logical_volumes : {};
      for (const [lvName, lv] of Object.entries(lvs)) {
        if (!isSection(lv)) continue;
        const id = `${vgName}/${lvName}`;
        const segments = Object.keys(lv)
          .filter((k) => /^segment\d+$/.test(k))
          .map((k) => lv[k])
          .filter(isSection)
          .sort((a, b) => Number(a.start_extent) - Number(b.start_extent));
        const size = segments.reduce((n, s) => n + Number(s.extent_count) * extent, 0);
        const parts: { device: BlockDevice; start: number; size: number }[] = [];
        let problem: string | undefined;
        let kind = 'linear';
        for (const s of segments) {
          const stripes = Array.isArray(s.stripes) ? s.stripes : [];
          if (s.type !== 'striped' || Number(s.stripe_count) !== 1 || stripes.length !== 2) {
            kind = s.type === 'striped' ? `striped (${s.stripe_count} stripes)` : String(s.type);
            problem = `logical volume ${id} is ${kind}: only linear volumes are supported`;
            break;
          }
          const pvKey = String(stripes[0]);
          const pvDesc = pvSections[pvKey];
          const pvUuid = isSection(pvDesc) ? String(pvDesc.id).replaceAll('-', '') : '';
          const phys = byUuid.get(pvUuid);
          if (!phys || !isSection(pvDesc)) {
            problem = `logical volume ${id} needs physical volume ${pvKey} (${pvUuid || 'unknown'}), which is not on this VM's disks`;
            break;
          }
          const start = Number(pvDesc.pe_start) * SECTOR + Number(stripes[1]) * extent;
          const len = Number(s.extent_count) * extent;
          if (start + len > phys.device.size) {
            problem = `logical volume ${id} extends past the end of physical volume ${pvKey}`;
            break;
          }
          parts.push({ device: phys.device, start, size: len });
        }
        out.push(problem ? { id, size, kind, problem } : { id, size, kind, device: concatDevice(parts) });
      }
    }
  }
  return out;
}
