// Smart selection (evaluated at run time): which VMs of the pools a job takes, and why the others
// are left out. Pure: the caller lists the VMs.
import type { JobConfig } from './config/schema';
import { TAGS, XCPB_KEYS } from './xo-keys';

export interface VmCandidate {
  uuid: string;
  name: string;
  poolId: string;
  powerState: string; // XAPI's: Running | Halted | Suspended | Paused
  tags: readonly string[];
  isTemplate: boolean;
  isSnapshot: boolean;
  isControlDomain: boolean;
  otherConfig: Readonly<Record<string, string>>;
}

export interface SelectedVm {
  uuid: string;
  name: string;
  poolId: string;
}

export interface SelectionResult {
  selected: SelectedVm[];
  excluded: { uuid: string; name: string; poolId: string; reason: string }[];
}

export function selectVms(selection: JobConfig['vms'], candidates: readonly VmCandidate[]): SelectionResult {
  const result: SelectionResult = { selected: [], excluded: [] };
  const explicit = selection.uuids ? new Set(selection.uuids) : undefined;
  for (const vm of candidates) {
    if (vm.isTemplate || vm.isSnapshot || vm.isControlDomain) continue; // not VMs a user means
    const reason = exclusionReason(selection, vm, explicit);
    if (reason) result.excluded.push({ uuid: vm.uuid, name: vm.name, poolId: vm.poolId, reason });
    else result.selected.push({ uuid: vm.uuid, name: vm.name, poolId: vm.poolId });
  }
  result.selected.sort(byName);
  return result;
}

const byName = (a: SelectedVm, b: SelectedVm) => a.name.localeCompare(b.name) || a.uuid.localeCompare(b.uuid);

/**
 * One page of a selection, for a run that pages through it: the first `limit` VMs whose uuid
 * sorts after `after` (uuid order: a VM's uuid never changes, so a VM present on every page's
 * listing is on exactly one page, whatever is renamed, added or removed meanwhile), then by name.
 */
export function selectionPage(
  selected: readonly SelectedVm[],
  after: string | undefined,
  limit: number,
): { selected: SelectedVm[]; next?: string } {
  const rest = selected
    .filter((vm) => after === undefined || vm.uuid > after)
    .sort((a, b) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0));
  const page = rest.slice(0, limit);
  const next = rest.length > limit ? page.at(-1)?.uuid : undefined;
  return { selected: page.sort(byName), next };
}

function exclusionReason(
  selection: JobConfig['vms'],
  vm: VmCandidate,
  explicit: Set<string> | undefined,
): string | undefined {
  if (selection.pools && !selection.pools.includes(vm.poolId)) return `pool ${vm.poolId} not selected`;
  if (vm.tags.includes(TAGS.noBackup)) return `tagged ${TAGS.noBackup}`;
  if (explicit) return explicit.has(vm.uuid) ? undefined : 'not in the job VM list';
  if (vm.otherConfig[XCPB_KEYS.createdBy])
    return `created by xcp-backup (${vm.otherConfig[XCPB_KEYS.createdBy]})`;
  if (selection.tags?.length && !selection.tags.some((t) => vm.tags.includes(t))) {
    return `has none of the tags ${selection.tags.join(', ')}`;
  }
  const excludedTag = selection.excludeTags?.find((t) => vm.tags.includes(t));
  if (excludedTag) return `tagged ${excludedTag} (excluded)`;
  if (selection.powerState !== 'any' && vm.powerState.toLowerCase() !== selection.powerState) {
    return `power state ${vm.powerState}, job wants ${selection.powerState}`;
  }
  return undefined;
}

/** Explicit VMs the job names that no pool has: each one is an error worth reporting. */
export function missingExplicitVms(
  selection: JobConfig['vms'],
  candidates: readonly VmCandidate[],
): string[] {
  if (!selection.uuids) return [];
  const known = new Set(candidates.map((c) => c.uuid));
  return selection.uuids.filter((u) => !known.has(u));
}
