import { Readable } from 'node:stream';
// the package's Deserializer is not exported by its main module
// @ts-expect-error no types for the internal module
import Deserializer from 'xmlrpc/lib/deserializer.js';
import { formatXapiDate, XFloat, XInt32, type XValue } from './values';

/** Escapes text the way XAPI does: `& < > "` escaped, control bytes other than TAB/LF/CR dropped. */
function escapeText(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 && c !== 9 && c !== 10 && c !== 13) continue;
    if (ch === '&') out += '&amp;';
    else if (ch === '<') out += '&lt;';
    else if (ch === '>') out += '&gt;';
    else if (ch === '"') out += '&quot;';
    else out += ch;
  }
  return out;
}

/** One `<value>` element, compact, with XAPI's conventions (ints as bare strings, no `<string>`). */
export function encodeXmlValue(v: XValue): string {
  if (v === undefined || v === null) return '<value></value>';
  if (typeof v === 'string') return `<value>${escapeText(v)}</value>`;
  if (typeof v === 'number') {
    return Number.isInteger(v) ? `<value>${v}</value>` : `<value><double>${formatDouble(v)}</double></value>`;
  }
  if (typeof v === 'boolean') return `<value><boolean>${v ? 1 : 0}</boolean></value>`;
  if (v instanceof Date) return `<value><dateTime.iso8601>${formatXapiDate(v)}</dateTime.iso8601></value>`;
  if (v instanceof XFloat) return `<value><double>${formatDouble(v.value)}</double></value>`;
  if (v instanceof XInt32) return `<value><i4>${v.value}</i4></value>`;
  if (Array.isArray(v)) return `<value><array><data>${v.map(encodeXmlValue).join('')}</data></array></value>`;
  let members = '';
  for (const [k, x] of Object.entries(v)) {
    if (x === undefined) continue;
    members += `<member><name>${escapeText(k)}</name>${encodeXmlValue(x)}</member>`;
  }
  return `<value><struct>${members}</struct></value>`;
}

/** `%.16g` as OCaml prints floats. */
function formatDouble(n: number): string {
  if (Number.isInteger(n)) return n.toFixed(0);
  return String(Number(n.toPrecision(16)));
}

const PROLOG = '<?xml version="1.0"?>';

/** A methodResponse carrying one param (the Status/Value struct, or the raw value for listMethods). */
export function encodeXmlResponse(v: XValue): string {
  return `${PROLOG}<methodResponse><params><param>${encodeXmlValue(v)}</param></params></methodResponse>`;
}

export interface ParsedCall {
  method: string;
  params: unknown[];
}

/** Parses an XML-RPC methodCall body; rejects with a message naming what is wrong. */
export function parseXmlCall(body: Buffer): Promise<ParsedCall> {
  return new Promise((resolve, reject) => {
    const d = new (Deserializer as any)('utf8');
    d.deserializeMethodCall(Readable.from([body]), (err: Error | null, method: string, params: unknown[]) => {
      if (err) reject(new Error(`malformed XML-RPC call: ${err.message}`));
      else if (typeof method !== 'string' || method === '')
        reject(new Error('XML-RPC call without methodName'));
      else resolve({ method, params: params ?? [] });
    });
  });
}

/** Parses a single `<value>…</value>` (e.g. a task result) with the same rules. */
export function parseXmlValue(xml: string): Promise<unknown> {
  if (xml.trim() === '') return Promise.resolve('');
  const body = `<?xml version="1.0"?><methodResponse><params><param>${xml}</param></params></methodResponse>`;
  return new Promise((resolve, reject) => {
    const d = new (Deserializer as any)('utf8');
    d.deserializeMethodResponse(Readable.from([Buffer.from(body)]), (err: Error | null, value: unknown) => {
      if (err) reject(err);
      else resolve(value);
    });
  });
}
