export {
  applyBitmapZeroes,
  Bat,
  batSize,
  bitmapHas,
  bitmapIsFull,
  blockCount,
  isZero,
  STORED_BLOCK_SIZE,
} from './bat';
export {
  chainBlockSource,
  createChainStream,
  findParentPath,
  localVhdStore,
  makeChain,
  openVhdChain,
  openVhdChainIn,
  type VhdChain,
  type VhdChainStore,
  type VhdDisk,
} from './chain';
export { checkVhd, checkVhdFile } from './check';
export { DiskType, SECTOR_SIZE, VHD_BLOCK_SIZE, VHD_MAX_SIZE } from './constants';
export {
  blockObjectPath,
  encodeDirectoryBat,
  openVhdDirectory,
  readVhdDirectoryParts,
  VHD_DIRECTORY_FILES,
  type VhdDirectoryParts,
  type VhdObjectStore,
  writeVhdDirectory,
  writeVhdDirectoryParts,
} from './directory';
export { VhdError, type VhdProblemCode } from './errors';
export { decodeFooter, encodeFooter, makeFooter, type VhdFooter } from './footer';
export { computeGeometry, type Geometry } from './geometry';
export { decodeHeader, encodeHeader, makeHeader, type ParentLocator, type VhdHeader } from './header';
export { computeLayout, type VhdLayout } from './layout';
export { finishInterruptedMerges, type MergeOptions, mergeVhdIntoParent } from './merge';
export {
  type FoundMergeState,
  findMergeState,
  findMergeStates,
  MERGE_STATE_FILE,
  type MergeState,
  parseMergeState,
} from './merge-state';
export { mergeStatePath, parentCandidates, parentNames, resolveParentPath } from './parent';
export { openRawBlockSource, writeRawFile } from './raw';
export { openVhdFile, openVhdHandle, type ReadHandle, type VhdFile } from './reader';
export { reidentifyVhdStream } from './reidentify';
export type { BlockSource, ParentRef, VhdIdentity } from './source';
export { readVhdStream, type VhdStreamItem } from './stream-reader';
export { createVhdStream, vhdPieces, vhdStreamLength } from './writer';
