export { sha1Hex, xxhashHex } from './checksum';
export { XvaError, type XvaProblemCode } from './errors';
export {
  buildOvaXml,
  DEFAULT_XVA_VERSION,
  groupRecords,
  type OvaXml,
  parseOvaXml,
  type XvaObject,
  type XvaVersion,
} from './ova-xml';
export { readXva, type XvaItem } from './reader';
export { type XvaDiskSize, xvaSizeBound } from './size';
export { TAR_END, tarHeader } from './tar';
export {
  chunkName,
  createXvaStream,
  XVA_CHUNK_SIZE,
  type XvaDisk,
  type XvaInput,
  xvaPieces,
} from './writer';
export { encodeValue, formatXapiDate, parseValue, XmlRpcDateTime, type XmlRpcValue } from './xmlrpc-value';
