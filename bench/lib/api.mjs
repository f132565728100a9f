// Setting up the coordinator through its public HTTP API: users, sessions, members, tokens.

export class Coordinator {
  constructor(base, adminKey) {
    this.base = base;
    this.adminKey = adminKey;
    this.users = [];
  }

  async request(method, path, key, body) {
    const headers = { authorization: `Bearer ${key}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(this.base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) : null;
  }

  /** Makes sure at least `n` users exist (user 0 owns the sessions). */
  async ensureUsers(n) {
    while (this.users.length < n) {
      const i = this.users.length;
      const created = await this.request('POST', '/v1/users', this.adminKey, {
        name: `bench${i}`,
        email: `bench${i}@example.com`,
        scopes: { repos: ['*'] },
      });
      this.users.push({ id: created.user.id, key: created.api_key });
    }
    return this.users.slice(0, n);
  }

  /**
   * A session owned by user 0 with users 1..n-1 as members → {id, urls} where urls[i] is
   * user i's WebSocket URL (with its token, without `since`).
   */
  async session(n, title = 'bench') {
    const users = await this.ensureUsers(n);
    const created = await this.request('POST', '/v1/sessions', users[0].key, { repo: 'acme/demo', title });
    const id = created.session.id;
    const tokens = [created.token];
    const rest = users.slice(1);
    // A few at a time: D1 writes and the room's participant_joined events.
    for (let i = 0; i < rest.length; i += 8) {
      const batch = rest.slice(i, i + 8);
      const minted = await Promise.all(
        batch.map(async (user) => {
          await this.request('POST', `/v1/sessions/${id}/members`, users[0].key, { user_id: user.id, role: 'member' });
          return (await this.request('POST', `/v1/sessions/${id}/tokens`, user.key)).token;
        }),
      );
      tokens.push(...minted);
    }
    const wsBase = this.base.replace(/^http/, 'ws');
    const urls = tokens.map((token) => `${wsBase}/v1/sessions/${id}/ws?token=${encodeURIComponent(token)}`);
    return { id, urls, ownerKey: users[0].key };
  }
}
