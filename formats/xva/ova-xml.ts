import { XvaError } from './errors';
import { encodeValue, parseValue, type XmlRpcValue } from './xmlrpc-value';

/** One exported object: class "VM" | "VBD" | "VDI" | "network" | "SR" | "VIF" | …, id "Ref:<n>". */
export interface XvaObject {
  class: string;
  id: string;
  snapshot: Record<string, XmlRpcValue>;
}

export interface XvaVersion {
  hostname: string;
  date: string;
  product_version: string;
  product_brand: string;
  build_number: string;
  xapi_major: number | string;
  xapi_minor: number | string;
  export_vsn: number | string;
}

/** What XO writes; a low xapi version so any importer accepts it (reference §6.2). */
export const DEFAULT_XVA_VERSION: XvaVersion = {
  hostname: 'localhost',
  date: '2022-01-01',
  product_version: '8.2.1',
  product_brand: 'XCP-ng',
  build_number: 'release/yangtze/master/58',
  xapi_major: 1,
  xapi_minor: 20,
  export_vsn: 2,
};

export interface OvaXml {
  version: XvaVersion;
  objects: XvaObject[];
}

export function buildOvaXml(doc: { version?: Partial<XvaVersion>; objects: XvaObject[] }): string {
  const version = { ...DEFAULT_XVA_VERSION, ...doc.version };
  return encodeValue({
    version,
    objects: doc.objects.map((o) => ({ class: o.class, id: o.id, snapshot: o.snapshot })),
  });
}

export function parseOvaXml(xml: string, file?: string): OvaXml {
  let v: XmlRpcValue;
  try {
    v = parseValue(xml);
  } catch (e) {
    throw new XvaError('BAD_OVA_XML', (e as Error).message, { file, member: 'ova.xml' });
  }
  const bad = (msg: string): never => {
    throw new XvaError('BAD_OVA_XML', msg, { file, member: 'ova.xml' });
  };
  if (!isStruct(v)) return bad('top-level value is not a struct');
  const version = v.version;
  const objects = v.objects;
  if (!isStruct(version)) return bad('missing version struct');
  if (!Array.isArray(objects)) return bad('missing objects array');
  return {
    version: version as unknown as XvaVersion,
    objects: objects.map((o, n) => {
      if (!isStruct(o) || typeof o.class !== 'string' || typeof o.id !== 'string' || !isStruct(o.snapshot)) {
        return bad(`object ${n} lacks class / id / snapshot`);
      }
      return { class: o.class, id: o.id, snapshot: o.snapshot };
    }),
  };
}

function isStruct(v: unknown): v is Record<string, XmlRpcValue> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** The records of a parsed ova.xml grouped by class, keyed by their Ref:<n> id. */
export function groupRecords(objects: XvaObject[]): {
  vms: XvaObject[];
  vbds: XvaObject[];
  vdis: XvaObject[];
  networks: XvaObject[];
  vifs: XvaObject[];
  srs: XvaObject[];
} {
  const of = (cls: string) => objects.filter((o) => o.class === cls);
  return {
    vms: of('VM'),
    vbds: of('VBD'),
    vdis: of('VDI'),
    networks: of('network'),
    vifs: of('VIF'),
    srs: of('SR'),
  };
}
