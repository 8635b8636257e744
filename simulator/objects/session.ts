import { fail } from '../errors';
import type { MethodTable } from '../methods';
import type { PoolState } from '../pool';
import { makeRecord } from './schema';

export function login(pool: PoolState, username: string, password: string, originator = ''): string {
  const ok = pool.users.some((u) => u.username === username && u.password === password);
  if (!ok) fail('SESSION_AUTHENTICATION_FAILED', username, 'Authentication failure');
  return pool.db.insert(
    'session',
    makeRecord('session', {
      this_host: pool.hostRef,
      last_active: new Date(),
      auth_user_name: username,
      originator,
    }),
  );
}

export function isValidSession(pool: PoolState, ref: unknown): boolean {
  return typeof ref === 'string' && pool.db.has('session', ref);
}

export function registerSessionMethods(table: MethodTable): void {
  table.set('session.login_with_password', {
    name: 'session.login_with_password',
    params: ['uname', 'pwd', 'version', 'originator'],
    required: 2,
    session: false,
    impl: (ctx, uname: unknown, pwd: unknown, _version: unknown, originator: unknown) =>
      login(ctx.pool, String(uname), String(pwd), originator === undefined ? '' : String(originator)),
  });
  table.set('session.logout', {
    name: 'session.logout',
    params: [],
    impl: (ctx) => {
      ctx.pool.db.remove('session', ctx.session);
      return '';
    },
  });
  table.set('session.get_all_subject_identifiers', {
    name: 'session.get_all_subject_identifiers',
    params: [],
    impl: () => [],
  });
  table.set('session.get_this_host', {
    name: 'session.get_this_host',
    params: ['self'],
    impl: (ctx, self: string) => ctx.pool.get('session', self).this_host,
  });
  table.set('session.get_record', {
    name: 'session.get_record',
    params: ['self'],
    impl: (ctx, self: string) => ctx.pool.get('session', self),
  });
}
