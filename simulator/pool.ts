import type { MethodTable } from './methods';
import { Db, type XRecord } from './objects/db';
import { Faults, Stats } from './objects/faults';
import { CLASSES } from './objects/schema';
import type { BlockStore } from './storage/blockstore';

export interface PoolSettings {
  /** merge unreferenced layers when snapshots are deleted */
  autoCoalesce: boolean;
  /** VHD chain length at which a snapshot fails with SR_BACKEND_FAILURE_109 (sm: 30) */
  maxChainLength: number;
  /** with autoCoalesce: ms between a deletion and the coalesce (0 = at once) */
  coalesceDelayMs: number;
  /** ms between a VM starting and its guest agent reporting (VM_guest_metrics); VMs whose
   *  other_config has `sim:guest-agent` = `none` never report */
  guestAgentDelayMs: number;
}

/** Time between a change and the save of the state (at least). */
const SAVE_DELAY_MS = 200;

/** Everything one simulated pool holds: its database, disks, sessions, faults and counters. */
export class PoolState {
  readonly db = new Db(CLASSES);
  readonly faults = new Faults();
  readonly stats = new Stats();
  readonly settings: PoolSettings = {
    autoCoalesce: true,
    maxChainLength: 30,
    coalesceDelayMs: 0,
    guestAgentDelayMs: 0,
  };
  /** SR refs made full through the control API */
  readonly fullSrs = new Set<string>();
  /** task ref → how to abort the work it tracks */
  readonly cancellers = new Map<string, () => void>();
  methods: MethodTable = new Map();
  poolRef = '';
  hostRef = '';
  private saveTimer: NodeJS.Timeout | undefined;
  onChange: (() => void) | undefined;

  constructor(
    readonly id: string,
    readonly users: { username: string; password: string }[],
    readonly store: BlockStore,
  ) {}

  get(cls: string, ref: string): XRecord {
    return this.db.get(cls, ref);
  }

  /** how long the last save took (ms) */
  private lastSaveMs = 0;

  /**
   * Schedules a save of the state (debounced): 200 ms after a change, or 20 times as long as the
   * last save took, so that saving a large pool (10,000 VMs: tens of MB, most of a second) never
   * takes more than a twentieth of the time while operations keep changing it.
   */
  changed(): void {
    if (!this.onChange || this.saveTimer) return;
    this.saveTimer = setTimeout(
      () => {
        this.saveTimer = undefined;
        const start = performance.now();
        this.onChange?.();
        this.lastSaveMs = performance.now() - start;
      },
      Math.max(SAVE_DELAY_MS, 20 * this.lastSaveMs),
    );
    this.saveTimer.unref();
  }

  flushTimers(): void {
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
  }
}
