// A webpack loader for the replay test only: rewrites workflows/backup-vm.ts so a VM's backup
// prepares its writers (locks and checks the remotes) first and runs its preflight second (the same
// work, in another order), the kind of change that breaks runs in flight on upgrade unless guarded
// by patched().
module.exports = function swapActivityOrder(source) {
  const before = `    const pre = await this.preflight();
    const keeper = new CancellationScope();
    let keeping: Promise<void> | undefined;
    try {
      await this.prepareWriters();`;
  const after = `    await this.prepareWriters();
    const pre = await this.preflight();
    const keeper = new CancellationScope();
    let keeping: Promise<void> | undefined;
    try {`;
  if (!source.includes(before))
    throw new Error('swap-activity-order-loader: backup-vm.ts changed, update the loader');
  return source.replace(before, after);
};
