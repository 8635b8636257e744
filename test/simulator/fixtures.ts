import type { Scenario } from '../../simulator/index';

export const MiB = 1024 * 1024;

/** A small pool: three VMs (prod running with two disks, dev halted, a template), two SRs. */
export function smallScenario(id = 'lab', overrides: { srSize?: string } = {}): Scenario {
  return {
    pools: [
      {
        id,
        credentials: [{ username: 'root', password: 'secret' }],
        hosts: [{ name: `${id}-host-1` }],
        srs: [
          { id: 'local', name: 'Local storage', size: overrides.srSize ?? '1GiB', default: true },
          { id: 'second', name: 'Second SR', size: '512MiB' },
        ],
        networks: [{ id: 'net0', name: 'Pool-wide network' }],
        vms: [
          {
            name: 'prod-1',
            tags: ['prod'],
            power: 'Running',
            memory: '16MiB',
            networks: ['net0'],
            disks: [
              { size: '16MiB', content: { type: 'random', seed: 1, blocks: 3 } },
              { size: '9MiB', sr: 'second', content: { type: 'random', seed: 2 } },
            ],
          },
          {
            name: 'dev-1',
            tags: ['dev'],
            power: 'Halted',
            memory: '16MiB',
            disks: [{ size: '8MiB', content: { type: 'random', seed: 3, blocks: 2 } }],
          },
          { name: 'tmpl', template: true, memory: '16MiB', disks: [{ size: '4MiB' }] },
        ],
      },
    ],
  };
}
