import type { MethodTable } from '../methods';
import { registerEventMethods } from './events';
import { registerGenericMethods } from './generic';
import { registerMiscMethods } from './misc';
import { CLASSES } from './schema';
import { registerSessionMethods } from './session';
import { registerTaskMethods } from './tasks';
import { registerStorageMethods } from './vdi';
import { registerVmMethods } from './vm';

/** Every message the simulator answers: generated ones first, explicit ones override them. */
export function buildMethodTable(): MethodTable {
  const table: MethodTable = new Map();
  for (const cls of CLASSES) if (cls !== 'session') registerGenericMethods(table, cls);
  registerSessionMethods(table);
  registerTaskMethods(table);
  registerEventMethods(table);
  registerStorageMethods(table);
  registerVmMethods(table);
  registerMiscMethods(table);
  return table;
}
