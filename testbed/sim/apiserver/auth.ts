// Bearer-token authentication: opaque random tokens mapped to users, as a static token file or
// the ServiceAccount token authenticator would give the real server.
import { randomBytes } from 'node:crypto';
import type { UserInfo } from './admission.js';

export const MASTERS_GROUP = 'system:masters';

export class TokenRegistry {
  private readonly users = new Map<string, UserInfo>();
  readonly admin: string;

  constructor() {
    this.admin = this.issue({ username: 'admin', groups: [MASTERS_GROUP, 'system:authenticated'] });
  }

  /** A token for any user (tests of RBAC wording use it). */
  issue(user: UserInfo): string {
    const token = randomBytes(24).toString('base64url');
    this.users.set(token, { ...user, groups: [...user.groups] });
    return token;
  }

  issueServiceAccountToken(namespace: string, name: string): string {
    if (!namespace || !name) throw new Error('issueServiceAccountToken: namespace and name are required');
    return this.issue({
      username: `system:serviceaccount:${namespace}:${name}`,
      groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
    });
  }

  revoke(token: string): void {
    if (token === this.admin) throw new Error('the admin token cannot be revoked');
    this.users.delete(token);
  }

  authenticate(authorization: string | undefined): UserInfo | undefined {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!match?.[1]) return undefined;
    const user = this.users.get(match[1]);
    return user ? { ...user, groups: [...user.groups] } : undefined;
  }
}
