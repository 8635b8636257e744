/**
 * XML-RPC values the way XAPI writes them in ova.xml (`Xmlrpc.to_string`): compact, strings and
 * integers as bare `<value>text</value>`, `<double>`, `<boolean>`, `<dateTime.iso8601>`, `<struct>`,
 * `<array><data>`. Parsing accepts the typed forms too (`<string>`, `<int>`, `<i4>`, `<i8>`, `<nil/>`).
 */
export type XmlRpcValue =
  | string
  | number
  | boolean
  | null
  | XmlRpcValue[]
  | { [k: string]: XmlRpcValue }
  | Date;

export class XmlRpcDateTime {
  constructor(readonly text: string) {}
}

function xmlEscape(s: string): string {
  return s
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f]/g, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** XAPI's datetime form: YYYYMMDDTHH:MM:SSZ. */
export function formatXapiDate(d: Date): string {
  const iso = d.toISOString();
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 19)}Z`;
}

export function encodeValue(v: unknown): string {
  if (v === null || v === undefined) return '<value></value>';
  if (typeof v === 'string') return `<value>${xmlEscape(v)}</value>`;
  if (typeof v === 'bigint') return `<value>${v}</value>`;
  if (typeof v === 'number') {
    return Number.isInteger(v) ? `<value>${v}</value>` : `<value><double>${v}</double></value>`;
  }
  if (typeof v === 'boolean') return `<value><boolean>${v ? 1 : 0}</boolean></value>`;
  if (v instanceof Date) return `<value><dateTime.iso8601>${formatXapiDate(v)}</dateTime.iso8601></value>`;
  if (v instanceof XmlRpcDateTime)
    return `<value><dateTime.iso8601>${xmlEscape(v.text)}</dateTime.iso8601></value>`;
  if (Array.isArray(v)) return `<value><array><data>${v.map(encodeValue).join('')}</data></array></value>`;
  if (typeof v === 'object') {
    const members = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => `<member><name>${xmlEscape(k)}</name>${encodeValue(x)}</member>`)
      .join('');
    return `<value><struct>${members}</struct></value>`;
  }
  throw new TypeError(`cannot encode ${typeof v} as XML-RPC`);
}

function xmlUnescape(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, e: string) => {
    if (e === 'amp') return '&';
    if (e === 'lt') return '<';
    if (e === 'gt') return '>';
    if (e === 'quot') return '"';
    if (e === 'apos') return "'";
    return String.fromCodePoint(
      e[1] === 'x' ? Number.parseInt(e.slice(2), 16) : Number.parseInt(e.slice(1), 10),
    );
  });
}

/** Parses one XML-RPC `<value>` document (an optional `<?xml …?>` prolog is skipped). Dates stay strings. */
export function parseValue(xml: string): XmlRpcValue {
  let i = 0;
  const fail = (msg: string): never => {
    throw new SyntaxError(`XML-RPC: ${msg} at offset ${i}`);
  };
  const skipWs = () => {
    while (i < xml.length && /\s/.test(xml[i])) i++;
  };
  const expect = (tag: string) => {
    skipWs();
    if (!xml.startsWith(tag, i)) fail(`expected ${tag}`);
    i += tag.length;
  };
  const textUntil = (end: string): string => {
    const j = xml.indexOf(end, i);
    if (j < 0) fail(`missing ${end}`);
    const t = xml.slice(i, j);
    i = j + end.length;
    return xmlUnescape(t);
  };
  const value = (): XmlRpcValue => {
    skipWs();
    if (xml.startsWith('<value/>', i)) {
      i += 8;
      return '';
    }
    expect('<value>');
    const start = i;
    skipWs();
    if (xml.startsWith('</value>', i)) {
      const t = xml.slice(start, i);
      i += 8;
      return xmlUnescape(t);
    }
    if (xml[i] !== '<') {
      i = start;
      return textUntil('</value>');
    }
    const tagEnd = xml.indexOf('>', i);
    if (tagEnd < 0) fail('unterminated tag');
    const tag = xml.slice(i + 1, tagEnd);
    i = tagEnd + 1;
    let v: XmlRpcValue;
    switch (tag) {
      case 'string':
        v = textUntil('</string>');
        break;
      case 'int':
      case 'i4':
      case 'i8':
        v = Number(textUntil(`</${tag}>`).trim());
        break;
      case 'double':
        v = Number(textUntil('</double>').trim());
        break;
      case 'boolean':
        v = textUntil('</boolean>').trim() === '1';
        break;
      case 'dateTime.iso8601':
        v = textUntil('</dateTime.iso8601>');
        break;
      case 'base64':
        v = textUntil('</base64>');
        break;
      case 'nil/':
        v = null;
        break;
      case 'struct/':
        v = {};
        break;
      case 'struct': {
        const o: Record<string, XmlRpcValue> = {};
        for (;;) {
          skipWs();
          if (xml.startsWith('</struct>', i)) {
            i += 9;
            break;
          }
          expect('<member>');
          expect('<name>');
          const name = textUntil('</name>');
          o[name] = value();
          expect('</member>');
        }
        v = o;
        break;
      }
      case 'array': {
        const a: XmlRpcValue[] = [];
        skipWs();
        if (xml.startsWith('<data/>', i)) i += 7;
        else {
          expect('<data>');
          for (;;) {
            skipWs();
            if (xml.startsWith('</data>', i)) {
              i += 7;
              break;
            }
            a.push(value());
          }
        }
        expect('</array>');
        v = a;
        break;
      }
      default:
        return fail(`unknown XML-RPC type <${tag}>`);
    }
    expect('</value>');
    return v;
  };
  skipWs();
  if (xml.startsWith('<?xml', i)) {
    i = xml.indexOf('?>', i) + 2;
    if (i < 2) fail('unterminated prolog');
  }
  const v = value();
  skipWs();
  if (i !== xml.length) fail('trailing content');
  return v;
}
