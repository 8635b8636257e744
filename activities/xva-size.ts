// The total of a full (XVA) export's progress, read from XAPI before the stream starts: XAPI sends
// an XVA with no length, so without this `xcpb run` could show bytes and rate but no percentage.
//
// Which size: each disk's data is bounded by its VDI's `virtual_size` and by the sum of the
// `physical_utilisation` of the VHD chain under the snapshot (the snapshot VDI and its
// `sm_config['vhd-parent']` ancestors, base copies included). Not the snapshot's own
// physical_utilisation: on a VHD SR a fresh snapshot is a near-empty layer over the base copy that
// holds the data, so it says nothing of what the export reads; and not the virtual size alone, as a
// thin disk sends only its allocated chunks (a 100 GiB disk holding 5 GiB would stop at 5 %).
// The total is an upper bound: the stream is the allocated chunks minus all-zero ones, and with
// compression (zstd by default) the bytes counted are compressed ones, so the bar can end short of
// 100 % and its ETA is the longest it would take, never a promise broken by a slow end.
import { type XvaDiskSize, xvaSizeBound } from '../formats/xva';
import type { XapiClient } from '../xapi';
import { NULL_REF, type VdiRecord, type VmRecord, vmDisks } from './xapi-records';

/** Deeper than any chain SM lets grow; stops a looping vhd-parent from looping. */
const MAX_CHAIN = 64;

/** The bound of the XVA export of a VM (its snapshot), in bytes. */
export async function xvaExportTotal(xapi: XapiClient, vmRef: string): Promise<number> {
  const vm = await xapi.getRecord<VmRecord>('VM', vmRef);
  const vdis = (await vmDisks(xapi, vm)).map((d) => d.vdi);
  // A checkpoint's memory image travels in the XVA too.
  if (vm.suspend_VDI && vm.suspend_VDI !== NULL_REF)
    vdis.push(await xapi.getRecord<VdiRecord>('VDI', vm.suspend_VDI));
  const sizes: XvaDiskSize[] = [];
  for (const vdi of vdis) {
    const virtualSize = Number(vdi.virtual_size);
    const used = await chainUtilisation(xapi, vdi);
    // An SR that reports no utilisation (0) says nothing: the whole disk is the bound.
    sizes.push({ virtualSize, dataBytes: used > 0 ? Math.min(used, virtualSize) : virtualSize });
  }
  return xvaSizeBound(sizes);
}

async function chainUtilisation(xapi: XapiClient, vdi: VdiRecord): Promise<number> {
  let bytes = Number(vdi.physical_utilisation ?? 0);
  let parent = (vdi.sm_config as Record<string, string> | undefined)?.['vhd-parent'];
  for (let depth = 0; parent && depth < MAX_CHAIN; depth++) {
    const ref = await xapi.call<string>('VDI.get_by_uuid', parent);
    const rec = await xapi.getRecord<VdiRecord>('VDI', ref);
    bytes += Number(rec.physical_utilisation ?? 0);
    parent = (rec.sm_config as Record<string, string> | undefined)?.['vhd-parent'];
  }
  return bytes;
}
