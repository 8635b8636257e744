import { Readable } from 'node:stream';

export interface FaultSpec {
  /** wire name without `Async.`, e.g. `VM.snapshot` */
  method: string;
  /** XAPI error code to answer, e.g. `SR_BACKEND_FAILURE_44` */
  code: string;
  params?: string[];
  /** fail the nth call from now on (1 = the next one) */
  nth?: number;
  /** how many consecutive calls fail (default 1) */
  times?: number;
}

export interface SimStats {
  maxConcurrent: {
    snapshot: number;
    export_raw_vdi: number;
    export: number;
    import: number;
    import_raw_vdi: number;
  };
  current: {
    snapshot: number;
    export_raw_vdi: number;
    export: number;
    import: number;
    import_raw_vdi: number;
  };
  calls: Record<string, number>;
  /** allocated 2 MiB blocks read from the disks (exports, copies), since the last reset */
  blocksRead: number;
}

export interface SimSnapshot {
  ref: string;
  uuid: string;
  name_label: string;
  snapshot_of: string;
  snapshot_of_uuid: string | null;
  /** the VM it was taken of no longer exists */
  orphan: boolean;
  snapshot_time: string;
  tags: string[];
  other_config: Record<string, string>;
}

export interface VdiInfo {
  ref: string;
  uuid: string;
  virtualSize: number;
  chainLength: number;
  allocatedBlocks: number[];
}

/** Typed client of a pool's control API (`<pool url>/_sim/…`); usable from any process. */
export class SimControl {
  constructor(readonly url: string) {}

  private async request(method: string, path: string, body?: unknown, raw?: Buffer): Promise<any> {
    const res = await fetch(`${this.url}/_sim/${path}`, {
      method,
      headers: raw ? { 'content-type': 'application/octet-stream' } : { 'content-type': 'application/json' },
      body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    const text = await res.text();
    const value = text ? JSON.parse(text) : {};
    if (!res.ok) throw new Error(`simulator control ${method} ${path}: ${res.status} ${value.error ?? text}`);
    return value;
  }

  injectFault(f: FaultSpec): Promise<void> {
    return this.request('POST', 'faults', f);
  }
  /** Removes every armed fault, cut, throttle and full SR. */
  clearFaults(): Promise<void> {
    return this.request('DELETE', 'faults');
  }
  /** Makes each call of `method` take `ms` more (0 removes it); VM operations are marked in progress meanwhile. */
  delay(method: string, ms: number): Promise<void> {
    return this.request('POST', 'delay', { method, ms });
  }
  cutExport(c: { afterBytes: number; times?: number }): Promise<void> {
    return this.request('POST', 'cut-export', c);
  }
  /** 0 = unlimited */
  throttle(t: { bytesPerSecond: number }): Promise<void> {
    return this.request('POST', 'throttle', t);
  }
  fillSr(srUuid: string, full: boolean): Promise<void> {
    return this.request('POST', `sr/${srUuid}/full`, { full });
  }
  async writeRandomBlocks(vdiUuid: string, o: { count: number; seed: number | string }): Promise<number[]> {
    return (await this.request('POST', `vdi/${vdiUuid}/random-blocks`, o)).blocks;
  }
  writeBytes(vdiUuid: string, offset: number, data: Buffer): Promise<void> {
    return this.request('PUT', `vdi/${vdiUuid}/bytes?offset=${offset}`, undefined, data);
  }
  async readVdi(vdiUuid: string): Promise<Readable> {
    const res = await fetch(`${this.url}/_sim/vdi/${vdiUuid}/content`);
    if (!res.ok || !res.body)
      throw new Error(`simulator control GET vdi/${vdiUuid}/content: ${res.status} ${await res.text()}`);
    return Readable.fromWeb(res.body as any);
  }
  vdiInfo(vdiUuid: string): Promise<VdiInfo> {
    return this.request('GET', `vdi/${vdiUuid}`);
  }
  async vdiSize(vdiUuid: string): Promise<number> {
    return (await this.vdiInfo(vdiUuid)).virtualSize;
  }
  stats(): Promise<SimStats> {
    return this.request('GET', 'stats');
  }
  resetStats(): Promise<void> {
    return this.request('POST', 'stats/reset');
  }
  snapshots(): Promise<SimSnapshot[]> {
    return this.request('GET', 'snapshots');
  }
  /** Waits for the SR's background merge in progress, then merges what is left; how many it merged. */
  async coalesce(): Promise<number> {
    return (await this.request('POST', 'coalesce')).merged;
  }
  settings(s: {
    autoCoalesce?: boolean;
    maxChainLength?: number;
    coalesceDelayMs?: number;
    guestAgentDelayMs?: number;
  }): Promise<{
    autoCoalesce: boolean;
    maxChainLength: number;
    coalesceDelayMs: number;
    guestAgentDelayMs: number;
  }> {
    return this.request('POST', 'settings', s);
  }
}
