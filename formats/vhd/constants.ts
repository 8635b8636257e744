/** Numbers fixed by the VHD specification (v1.0) and by how XAPI / XO write VHDs. */
export const SECTOR_SIZE = 512;
export const VHD_BLOCK_SIZE = 2 * 1024 * 1024;
export const FOOTER_SIZE = 512;
export const HEADER_SIZE = 1024;
/** Sector bitmap of a 2 MiB block: 4096 bits = 512 bytes (one sector). */
export const BITMAP_SIZE = 512;
export const SECTORS_PER_BLOCK = VHD_BLOCK_SIZE / SECTOR_SIZE;
/** Largest virtual size XAPI accepts for a VHD (`max_vhd_size`). */
export const VHD_MAX_SIZE = 2040 * 1024 * 1024 * 1024;
/** Seconds between the Unix epoch and the VHD epoch 2000-01-01T00:00:00Z. */
export const VHD_EPOCH_OFFSET = 946684800;

export const FOOTER_COOKIE = 'conectix';
export const HEADER_COOKIE = 'cxsparse';
export const FILE_FORMAT_VERSION = 0x00010000;
export const HEADER_VERSION = 0x00010000;
export const FEATURES_RESERVED = 0x00000002;
export const NO_DATA_OFFSET = 0xffffffffffffffffn;
export const BAT_UNUSED = 0xffffffff;

export const DiskType = { fixed: 2, dynamic: 3, differencing: 4 } as const;
export type DiskTypeValue = (typeof DiskType)[keyof typeof DiskType];

export const PlatformCode = {
  none: 0,
  wi2r: 0x57693272,
  wi2k: 0x5769326b,
  w2ru: 0x57327275,
  w2ku: 0x57326b75,
  mac: 0x4d616320,
  macx: 0x4d616358,
} as const;

export const CREATOR_APPLICATION = 'xcpb';
export const CREATOR_VERSION = 0x00010000;
export const CREATOR_HOST_OS_WI2K = 0x5769326b;

/** Sectors XCP-ng's SM allows in a chain before refusing snapshots; we refuse deeper loops earlier. */
export const MAX_CHAIN_DEPTH = 64;
