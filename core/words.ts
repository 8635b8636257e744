// Counts as people write them: "1 disk", "2 disks", "0 VMs". Pure (workflows use it too).
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
