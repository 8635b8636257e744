// The environment a worker process runs best in, set where it is launched (the Dockerfile; a
// systemd unit's Environment=; bench/backup-rss.ts): a process cannot change these once started.
// - MALLOC_ARENA_MAX=2: the Temporal SDK's native threads would each grow a glibc malloc arena of
//   their own (~15 MiB less RSS);
// - --max-semi-space-size=4 (MiB): V8's young generation, per isolate (the main one and the
//   workflow thread's), would grow to 16 MiB semi-spaces under the streams' churn of small objects
//   (~45 MiB less RSS); the buffers themselves live outside it.
export const WORKER_PROCESS_ENV = {
  MALLOC_ARENA_MAX: '2',
  NODE_OPTIONS: '--max-semi-space-size=4',
} as const;
