import type { CallContext, MethodTable } from '../methods';
import { parseXapiDate } from '../rpc/values';
import { makeRecord } from './schema';

/** host, pool and message messages that are not generated. */
export function registerMiscMethods(table: MethodTable): void {
  const def = (name: string, params: string[], impl: (ctx: CallContext, ...a: any[]) => any, async = false) =>
    table.set(name, { name, params, impl, async });
  def('host.get_servertime', ['host'], (ctx, host: string) => {
    ctx.pool.get('host', host);
    return new Date();
  });
  def('host.get_server_localtime', ['host'], (ctx, host: string) => {
    ctx.pool.get('host', host);
    return new Date();
  });
  def(
    'message.create',
    ['name', 'priority', 'cls', 'obj_uuid', 'body'],
    (ctx, name, priority, cls, objUuid, body) =>
      ctx.pool.db.insert(
        'message',
        makeRecord('message', {
          name: String(name),
          priority: Number(priority),
          cls: String(cls),
          obj_uuid: String(objUuid),
          body: String(body),
          timestamp: new Date(),
        }),
      ),
  );
  def('message.destroy', ['self'], (ctx, self: string) => {
    ctx.pool.get('message', self);
    ctx.pool.db.remove('message', self);
    return '';
  });
  def('message.get_since', ['since'], (ctx, since: unknown) => {
    const t = since instanceof Date ? since : parseXapiDate(String(since));
    return Object.fromEntries(ctx.pool.db.all('message').filter(([, r]) => (r.timestamp as Date) > t));
  });
}
