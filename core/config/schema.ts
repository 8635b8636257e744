// The configuration file's shape (DESIGN §6), as zod schemas: the single source for validation, for
// the types the code uses and for the JSON Schema editors complete from (`xcpb config schema`).
import { z } from 'zod';

const id = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/,
    'an id is 1-63 letters, digits, "_", "." or "-", starting with a letter or digit',
  );

/** A secret is only ever referenced: the file never holds its value. */
const secretRefError =
  'a secret must be referenced, not written in the file: use { env: VARIABLE_NAME } or { file: /path/to/secret }';

export const SecretRef = z.union(
  [
    z.strictObject({
      env: z.string().min(1).describe('name of the environment variable holding the secret'),
    }),
    z.strictObject({ file: z.string().min(1).describe('path of a file holding the secret') }),
  ],
  {
    error: (issue) =>
      typeof issue.input === 'string' ? `plain-text secret rejected: ${secretRefError}` : secretRefError,
  },
);

const count = z.number().int().nonnegative();
const positive = z.number().int().positive();

export const PoolConcurrency = z.strictObject({
  snapshot: positive.default(2).describe('snapshots taken at once on this pool'),
  diskExport: positive.default(12).describe('VDI (VHD) exports at once on this pool'),
  vmExport: positive.default(2).describe('VM (XVA) exports at once on this pool'),
  import: positive
    .default(2)
    .describe("VMs importing replicas (DR / CR) into this pool at once (one VM's disks count once)"),
});

export const Pool = z.strictObject({
  id,
  url: z.url({ protocol: /^https?$/ }).describe('URL of the pool master, https:// normally'),
  username: z.string().min(1),
  password: SecretRef,
  allowUnauthorized: z.boolean().default(false).describe('accept a self-signed TLS certificate'),
  concurrency: PoolConcurrency.default({ snapshot: 2, diskExport: 12, vmExport: 2, import: 2 }),
});

export const Remote = z
  .strictObject({
    id,
    url: z
      .string()
      .regex(
        /^(file:\/\/\/|s3:\/\/[^/]+\/[^/]+|smb:\/\/[^/]+\/[^/]+|nfs:\/\/[^/]+\/[^/]+)/,
        'a remote URL is file:///absolute/path, s3://host[:port]/bucket[/prefix], smb://host/share[/path] or nfs://host/export',
      ),
    // S3 (s3:// URLs)
    region: z.string().min(1).optional().describe('S3 region (default us-east-1)'),
    accessKeyId: z.string().min(1).optional().describe('S3 access key id'),
    secretAccessKey: SecretRef.optional().describe('S3 secret access key (a reference)'),
    protocol: z
      .enum(['https', 'http'])
      .default('https')
      .describe('S3 endpoint protocol; http only on a trusted network'),
    allowUnauthorized: z.boolean().default(false).describe('accept a self-signed TLS certificate (S3)'),
    pathStyle: z
      .boolean()
      .default(true)
      .describe('S3 addressing: https://host/bucket/key (true) or https://bucket.host/key (false)'),
    // SMB and NFS (mounted by the worker)
    domain: z.string().min(1).optional().describe('SMB domain'),
    username: z.string().min(1).optional().describe('SMB user'),
    password: SecretRef.optional().describe('SMB password (a reference)'),
    mountOptions: z.string().min(1).optional().describe('mount -o options (e.g. vers=4.1 for NFS)'),
    // Any remote
    encryptionKey: SecretRef.optional().describe(
      'encrypt every file at rest with AES-256-GCM (a reference to a 32-character key, as Xen Orchestra)',
    ),
  })
  .superRefine((remote, ctx) => {
    if (!remote.url.startsWith('s3://')) return;
    for (const field of ['accessKeyId', 'secretAccessKey'] as const) {
      if (remote[field] === undefined)
        ctx.addIssue({ code: 'custom', path: [field], message: `an s3:// remote needs ${field}` });
    }
  });

export const LongTermRetention = z.strictObject({
  daily: count.optional(),
  weekly: count.optional(),
  monthly: count.optional(),
  yearly: count.optional(),
});

/** Where the replicas' retention is written (XO's name), for those who write `retention.replica`. */
export const MOVED_RETENTION_KEYS: Record<string, string> = {
  replica: "copyRetention: <n>, beside retention on the schedule (XO's name for the replicas kept per SR)",
};

export const Retention = z.strictObject(
  {
    remote: count.default(0).describe('backups of this schedule kept on each remote'),
    snapshot: count.default(0).describe('snapshots of this schedule kept on the VM'),
    longTerm: LongTermRetention.optional(),
  },
  {
    error: (issue) => {
      if (issue.code !== 'unrecognized_keys') return undefined;
      const moved = issue.keys.find((k) => MOVED_RETENTION_KEYS[k]);
      return moved ? `retention.${moved} is now written ${MOVED_RETENTION_KEYS[moved]}` : undefined;
    },
  },
);

export const CopyRetention = count
  .default(0)
  .describe("replicas of this schedule kept on each SR (XO's copyRetention; DR and CR jobs)");

export const HealthCheck = z.strictObject({
  sr: z.string().min(1).describe('SR (uuid or name) the backup is restored to for the check'),
  tags: z.array(z.string()).optional(),
  timeout: z.string().optional().describe('e.g. "10m"; scales with the restored size when omitted'),
});

export const Schedule = z.strictObject({
  id,
  cron: z.string().min(1),
  timezone: z.string().default('UTC'),
  enabled: z.boolean().default(true),
  retention: Retention.default({ remote: 0, snapshot: 0 }),
  copyRetention: CopyRetention,
  healthCheck: HealthCheck.optional(),
});

export const PowerState = z.enum(['running', 'halted', 'suspended', 'paused', 'any']);

export const VmSelection = z
  .strictObject({
    pools: z.array(id).optional().describe('pools to take VMs from (all configured pools when omitted)'),
    tags: z.array(z.string()).optional().describe('a VM is taken when it has any of these tags'),
    excludeTags: z.array(z.string()).optional(),
    powerState: PowerState.default('any'),
    uuids: z.array(z.string()).optional().describe('explicit VM list instead of smart mode'),
  })
  .refine((s) => !(s.uuids && (s.tags || s.excludeTags)), {
    message: 'an explicit VM list (uuids) cannot be combined with tags or excludeTags',
  });

/** XO's older names for the SR modes, and the form that replaces each (DESIGN §1: targets are writers). */
const RENAMED_MODES: Record<string, string> = {
  replication: 'mode: delta with srs: [{ pool, sr }] (continuous replication)',
  'disaster-recovery': 'mode: full with srs: [{ pool, sr }] (disaster recovery)',
};

/** full / delta go to the job's remotes and/or SRs: full + SRs is DR, delta + SRs is CR. */
export const Mode = z.enum(['snapshot', 'full', 'delta'], {
  error: (issue) =>
    typeof issue.input === 'string' && RENAMED_MODES[issue.input]
      ? `mode "${issue.input}" is now written ${RENAMED_MODES[issue.input]}`
      : undefined,
});
export const SnapshotMode = z.enum(['normal', 'quiesce', 'memory', 'offline']);
export const Compression = z.enum(['none', 'gzip', 'zstd']);

export const ReportWhen = z.enum(['always', 'failure', 'never']);

export const Reports = z
  .strictObject({
    when: ReportWhen.default('failure').describe('send after every run, only after a failed one, or never'),
    email: z.array(z.email()).default([]).describe('recipients of the report (needs `smtp` in the config)'),
    webhook: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe(
        'the run report is POSTed there as JSON (keep tokens out of it: it is part of the run input)',
      ),
  })
  .describe("the run's report by email and webhook, as Xen Orchestra's report plugins");

export const Smtp = z
  .strictObject({
    host: z.string().min(1),
    port: z.number().int().positive().default(587),
    secure: z
      .boolean()
      .default(false)
      .describe('TLS from the start (port 465); otherwise STARTTLS when offered'),
    username: z.string().optional(),
    password: SecretRef.optional(),
    from: z.string().min(1).describe('e.g. "xcp-backup <backups@example.org>"'),
  })
  .describe('the mail server the workers send reports through');

export const Job = z.strictObject({
  id,
  name: z.string().optional(),
  mode: Mode,
  vms: VmSelection,
  remotes: z.array(id).default([]),
  srs: z
    .array(
      z.strictObject({
        pool: id.describe('a configured pool (cross-pool replication is the common case)'),
        sr: z.string().min(1).describe('SR uuid or name on that pool'),
      }),
    )
    .default([])
    .describe('replication targets: full → disaster recovery, delta → continuous replication'),
  compression: Compression.default('zstd'),
  snapshotMode: SnapshotMode.default('normal'),
  concurrency: count.default(2).describe('VMs in flight at once; 0 = all'),
  fullInterval: count.default(0).describe('a full backup every N runs of the chain (0 = never forced)'),
  catchupWindow: z.string().default('1h').describe('how late a missed scheduled run may still start'),
  chainWait: z
    .strictObject({ interval: z.string().default('5m'), maximum: z.string().default('1h') })
    .default({ interval: '5m', maximum: '1h' })
    .describe('when a VDI chain is too long to snapshot: how often to look again, and for how long'),
  reports: Reports.optional(),
  schedules: z.array(Schedule).default([]),
});

/** How workers and commands reach Temporal; flags and TEMPORAL_* variables override each field. */
export const TemporalConnection = z.strictObject({
  address: z
    .string()
    .min(1)
    .optional()
    .describe('host:port of the Temporal frontend (default localhost:7233)'),
  namespace: z.string().min(1).optional().describe('namespace of the runs and schedules (default "default")'),
  tls: z
    .strictObject({
      ca: z.string().min(1).optional().describe("file of the CA that signed the server's certificate"),
      cert: z.string().min(1).optional().describe('file of the client certificate (mTLS)'),
      key: SecretRef.optional().describe(
        'the client private key (mTLS), e.g. { file: /run/secrets/temporal-key }',
      ),
      serverName: z
        .string()
        .min(1)
        .optional()
        .describe("name in the server's certificate, when not the host"),
    })
    .optional()
    .describe('TLS to the frontend; present (even empty) = TLS on'),
  apiKey: SecretRef.optional().describe('API key sent as a bearer token (turns TLS on)'),
});

export const Config = z.strictObject({
  name: id
    .optional()
    .describe(
      'name of this config: `xcpb apply` records it on each schedule and leaves the schedules of other configs alone (default: the file name without extension)',
    ),
  smtp: Smtp.optional(),
  temporal: TemporalConnection.optional(),
  pools: z.array(Pool).default([]),
  remotes: z.array(Remote).default([]),
  jobs: z.array(Job).default([]),
});

export type SecretRef = z.infer<typeof SecretRef>;
export type TemporalConnectionConfig = z.infer<typeof TemporalConnection>;
export type PoolConfig = z.infer<typeof Pool>;
export type RemoteConfig = z.infer<typeof Remote>;
export type ScheduleConfig = z.infer<typeof Schedule>;
export type JobConfig = z.infer<typeof Job>;
export type Config = z.infer<typeof Config>;
export type Mode = z.infer<typeof Mode>;
export type ReportsConfig = z.infer<typeof Reports>;
export type SmtpConfig = z.infer<typeof Smtp>;
export type Compression = z.infer<typeof Compression>;
