/** Faults and delays injected through the control API (pure bookkeeping). */
export interface RpcFault {
  method: string;
  code: string;
  params: string[];
  /** fire on the nth call counted from injection (1 = next call) */
  nth: number;
  /** how many consecutive calls fail from the nth on */
  times: number;
  seen: number;
}

export interface ExportCut {
  afterBytes: number;
  times: number;
}

export class Faults {
  rpc: RpcFault[] = [];
  cuts: ExportCut[] = [];
  bytesPerSecond = 0;
  delays = new Map<string, number>();

  injectRpc(f: { method: string; code: string; params?: string[]; nth?: number; times?: number }): void {
    this.rpc.push({
      method: f.method,
      code: f.code,
      params: f.params ?? [],
      nth: f.nth ?? 1,
      times: f.times ?? 1,
      seen: 0,
    });
  }

  /** Counts a call of `method`; returns the fault to raise, if any. */
  onCall(method: string): RpcFault | undefined {
    let hit: RpcFault | undefined;
    for (const f of this.rpc) {
      if (f.method !== method) continue;
      f.seen++;
      if (!hit && f.seen >= f.nth && f.seen < f.nth + f.times) hit = f;
    }
    this.rpc = this.rpc.filter((f) => f.seen < f.nth + f.times - 1);
    return hit;
  }

  /** Takes the next export cut, if one is armed. */
  takeCut(): number | undefined {
    const c = this.cuts[0];
    if (!c) return undefined;
    if (--c.times <= 0) this.cuts.shift();
    return c.afterBytes;
  }

  clear(): void {
    this.rpc = [];
    this.cuts = [];
    this.bytesPerSecond = 0;
    this.delays.clear();
  }
}

/** Current and maximum concurrency of the operations tests care about. */
export class Stats {
  current: Record<string, number> = {
    snapshot: 0,
    export_raw_vdi: 0,
    export: 0,
    import: 0,
    import_raw_vdi: 0,
  };
  max: Record<string, number> = { snapshot: 0, export_raw_vdi: 0, export: 0, import: 0, import_raw_vdi: 0 };
  calls: Record<string, number> = {};

  enter(op: string): () => void {
    this.current[op] = (this.current[op] ?? 0) + 1;
    this.max[op] = Math.max(this.max[op] ?? 0, this.current[op]);
    let done = false;
    return () => {
      if (!done) {
        done = true;
        this.current[op]--;
      }
    };
  }

  count(method: string): void {
    this.calls[method] = (this.calls[method] ?? 0) + 1;
  }

  reset(): void {
    for (const k of Object.keys(this.max)) this.max[k] = this.current[k] ?? 0;
    this.calls = {};
  }
}
