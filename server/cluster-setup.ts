// Prepares any Temporal cluster or namespace for xcp-backup (`xcpb server setup`): the namespace
// (created with a month of retention when missing) and the search attributes of DESIGN §4, through
// the operator service, then verified by a visibility query that uses every one of them. Idempotent:
// a second run finds everything in place and changes nothing.
import { type Connection, isGrpcServiceError } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
// CommonJS: its namespaces are reached through the default export.
import proto, { type temporal } from '@temporalio/proto';
import { SA } from '../core/search-attributes';

const { IndexedValueType } = proto.temporal.api.enums.v1;
const GRPC_NOT_FOUND = 5;
const GRPC_ALREADY_EXISTS = 6;
const GRPC_PERMISSION_DENIED = 7;

export const SETUP_RETENTION_DAYS = 30;

export interface SetupOptions {
  connection: Connection;
  namespace: string;
  log?: (line: string) => void;
  /** how long to wait for the cluster to see the new namespace and attributes (default 120 s) */
  verifyTimeoutMs?: number;
}

export interface SetupResult {
  namespaceCreated: boolean;
  attributesAdded: string[];
}

/** Our search attributes with the operator service's types, from core/search-attributes.ts. */
export function wantedAttributes(): Record<string, temporal.api.enums.v1.IndexedValueType> {
  return Object.fromEntries(
    Object.values(SA).map((key) => [
      key.name,
      IndexedValueType[`INDEXED_VALUE_TYPE_${key.type}` as keyof typeof IndexedValueType],
    ]),
  );
}

const typeName = (t: number | null | undefined) =>
  (IndexedValueType[t ?? 0] ?? String(t)).replace('INDEXED_VALUE_TYPE_', '');

export async function setupCluster(o: SetupOptions): Promise<SetupResult> {
  const log = o.log ?? (() => {});
  const { connection, namespace } = o;
  const result: SetupResult = { namespaceCreated: false, attributesAdded: [] };

  const existing = await describeNamespace(connection, namespace);
  if (existing) {
    const days = Number(existing.config?.workflowExecutionRetentionTtl?.seconds ?? 0) / 86_400;
    log(`namespace ${namespace}: present (retention ${days} days)`);
  } else {
    try {
      await connection.workflowService.registerNamespace({
        namespace,
        description: 'xcp-backup runs and schedules',
        workflowExecutionRetentionPeriod: msToTs(SETUP_RETENTION_DAYS * 86_400_000),
      });
      result.namespaceCreated = true;
      log(`namespace ${namespace}: created (retention ${SETUP_RETENTION_DAYS} days)`);
    } catch (err) {
      // Another setup created it meanwhile: fine.
      if (!(isGrpcServiceError(err) && err.code === GRPC_ALREADY_EXISTS)) throw err;
      log(`namespace ${namespace}: present`);
    }
  }

  const wanted = wantedAttributes();
  // A namespace just created reaches the frontend's cache a few seconds later.
  const have = await untilNamespaceKnown(o, () => customAttributes(connection, namespace));
  const missing: Record<string, temporal.api.enums.v1.IndexedValueType> = {};
  for (const [name, type] of Object.entries(wanted)) {
    if (have[name] === undefined) missing[name] = type;
    else if (have[name] !== type)
      throw new Error(
        `search attribute ${name} exists in namespace ${namespace} as ${typeName(have[name])}, but xcp-backup needs ${typeName(type)}; ` +
          'remove it (temporal operator search-attribute remove) and run setup again',
      );
  }
  if (Object.keys(missing).length > 0) {
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: missing });
    result.attributesAdded = Object.keys(missing);
    log(`search attributes: added ${result.attributesAdded.join(', ')}`);
  } else {
    log(`search attributes: all ${Object.keys(wanted).length} present`);
  }

  await verify(o, wanted);
  log(`verified: namespace ${namespace} answers queries on ${Object.keys(wanted).join(', ')}`);
  return result;
}

type ListSearchAttributes = (req: {
  namespace: string;
}) => Promise<{ customAttributes?: Record<string, number> | null }>;

/**
 * Our search attributes the namespace lacks (or has with another type); [] when all are there, or
 * when the caller may not list them (an API key without operator rights: then commands will tell).
 */
export async function missingSearchAttributes(
  list: ListSearchAttributes,
  namespace: string,
): Promise<string[]> {
  let have: Record<string, number>;
  try {
    have = (await list({ namespace })).customAttributes ?? {};
  } catch (err) {
    if (isGrpcServiceError(err) && err.code === GRPC_PERMISSION_DENIED) return [];
    throw err;
  }
  return Object.entries(wantedAttributes())
    .filter(([name, type]) => have[name] !== type)
    .map(([name]) => name);
}

async function untilNamespaceKnown<T>(o: SetupOptions, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + (o.verifyTimeoutMs ?? 120_000);
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!(isGrpcServiceError(err) && err.code === GRPC_NOT_FOUND) || Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function describeNamespace(connection: Connection, namespace: string) {
  try {
    return await connection.workflowService.describeNamespace({ namespace });
  } catch (err) {
    if (isGrpcServiceError(err) && err.code === GRPC_NOT_FOUND) return undefined;
    throw err;
  }
}

async function customAttributes(connection: Connection, namespace: string) {
  const r = await connection.operatorService.listSearchAttributes({ namespace });
  return (r.customAttributes ?? {}) as Record<string, number>;
}

/** A visibility query naming every attribute: it fails until the frontend's caches know them. */
export function probeQuery(): string {
  return Object.values(SA)
    .map((key) => `${key.name} = "xcpb-setup-probe"`)
    .join(' AND ');
}

async function verify(o: SetupOptions, wanted: Record<string, number>): Promise<void> {
  const deadline = Date.now() + (o.verifyTimeoutMs ?? 120_000);
  let said = false;
  for (;;) {
    let problem: string;
    try {
      const have = await customAttributes(o.connection, o.namespace);
      const absent = Object.keys(wanted).filter((n) => have[n] !== wanted[n]);
      if (absent.length === 0) {
        await o.connection.workflowService.countWorkflowExecutions({
          namespace: o.namespace,
          query: probeQuery(),
        });
        return;
      }
      problem = `not listed yet: ${absent.join(', ')}`;
    } catch (err) {
      problem = (err as Error).message;
    }
    if (Date.now() > deadline)
      throw new Error(`namespace ${o.namespace} is not usable after setup: ${problem}`);
    if (!said) {
      o.log?.('waiting for the cluster to see the changes (its caches refresh every few seconds)');
      said = true;
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
}
