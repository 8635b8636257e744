import { XapiFailure } from '../errors';
import type { XRecord } from './db';

/** Power states in which each VM operation is allowed (`xapi_vm_lifecycle.ml` allowed_power_states). */
const POWER_STATES: Record<string, readonly string[]> = {
  snapshot: ['halted', 'paused', 'suspended', 'running'],
  checkpoint: ['paused', 'suspended', 'running'],
  clone: ['halted'],
  copy: ['halted'],
  export: ['halted', 'suspended'],
  destroy: ['halted', 'suspended'],
  start: ['halted'],
  start_on: ['halted'],
  clean_shutdown: ['running'],
  shutdown: ['paused', 'suspended', 'running'],
  hard_shutdown: ['paused', 'suspended', 'running'],
  clean_reboot: ['running'],
  hard_reboot: ['paused', 'running'],
  suspend: ['running'],
  resume: ['suspended'],
  pause: ['running'],
  unpause: ['paused'],
  make_into_template: ['halted'],
  revert: ['halted', 'paused', 'suspended', 'running'],
  snapshot_with_quiesce: ['running', 'halted'],
};

/** Operations allowed to run at the same time on one VM. */
const COMPATIBLE_GROUPS: readonly (readonly string[])[] = [
  ['clone', 'copy', 'export'],
  ['snapshot', 'checkpoint'],
];

const TEMPLATE_OPS = new Set(['clone', 'copy', 'export', 'metadata_export', 'provision', 'destroy']);
const SNAPSHOT_OPS = new Set([
  'revert',
  'clone',
  'copy',
  'export',
  'destroy',
  'hard_shutdown',
  'metadata_export',
]);

export const VM_OPERATIONS = Object.keys(POWER_STATES);

function compatible(a: string, b: string): boolean {
  return COMPATIBLE_GROUPS.some((g) => g.includes(a) && g.includes(b));
}

function allowedPowerStates(vm: XRecord, op: string): readonly string[] {
  const base = POWER_STATES[op] ?? ['halted', 'paused', 'suspended', 'running'];
  if ((op === 'clone' || op === 'copy') && vm.is_a_snapshot) return [...base, 'suspended'];
  return base;
}

/**
 * Why `op` cannot run on `vm`, checked in XAPI's order (`check_operation_error`): blocked,
 * power state, other operation in progress, template, snapshot, control domain.
 */
export function checkVmOperation(ref: string, vm: XRecord, op: string): XapiFailure | undefined {
  const blocked = vm.blocked_operations as Record<string, string>;
  if (Object.hasOwn(blocked, op)) return new XapiFailure('OPERATION_BLOCKED', [ref, blocked[op]]);
  const states = allowedPowerStates(vm, op);
  const actual = String(vm.power_state).toLowerCase();
  if (!states.includes(actual))
    return new XapiFailure('VM_BAD_POWER_STATE', [ref, states.join(', '), actual]);
  for (const [task, other] of Object.entries(vm.current_operations as Record<string, string>)) {
    if (!compatible(op, other))
      return new XapiFailure('OTHER_OPERATION_IN_PROGRESS', ['VM', ref, other, task]);
  }
  if (vm.is_a_template && !vm.is_a_snapshot && !TEMPLATE_OPS.has(op) && !op.startsWith('changing_')) {
    return new XapiFailure('VM_IS_TEMPLATE', [ref, op]);
  }
  if (vm.is_a_snapshot && !SNAPSHOT_OPS.has(op)) return new XapiFailure('VM_IS_SNAPSHOT', [ref, op]);
  if (vm.is_control_domain && op !== 'snapshot') {
    return new XapiFailure('OPERATION_NOT_ALLOWED', ['This operation is not allowed on a control domain']);
  }
  if (op === 'snapshot_with_quiesce') return new XapiFailure('VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED', [ref]);
  return undefined;
}

/** The operations that would pass the check now (VM.allowed_operations). */
export function allowedOperations(ref: string, vm: XRecord): string[] {
  return VM_OPERATIONS.filter((op) => op !== 'snapshot_with_quiesce' && !checkVmOperation(ref, vm, op));
}
