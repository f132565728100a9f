// The floor: a minimal Durable Object doing the least the coordinator's job needs, so the
// benchmark can say how far the coordinator is from what the runtime allows.
//
// A room accepts participant sockets (hibernation API). A frame from a participant or from
// the bridge socket is one INSERT and the same string sent to every participant socket.
// Connecting with `?since=N` replays the stored rows after N (one SELECT, one send each)
// before anything live, like the coordinator. No auth, no validation, no presence.
//
//   GET /rooms/:name/ws[?since=N]      participant socket: welcome {last_seq}, replay, live
//   GET /rooms/:name/ws?role=bridge    the bridge: its frames are stored and broadcast

import { DurableObject } from 'cloudflare:workers';

export class FloorRoom extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec('CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, json TEXT NOT NULL)');
    this.seq = this.sql.exec('SELECT COALESCE(MAX(seq), 0) AS n FROM events').one().n;
  }

  fetch(request) {
    const url = new URL(request.url);
    const { 0: client, 1: server } = new WebSocketPair();
    if (url.searchParams.get('role') === 'bridge') {
      this.ctx.acceptWebSocket(server, ['bridge']);
    } else {
      this.ctx.acceptWebSocket(server, ['participant']);
      server.send(`{"type":"welcome","last_seq":${this.seq}}`);
      const since = url.searchParams.get('since');
      if (since !== null) {
        for (const row of this.sql.exec('SELECT json FROM events WHERE seq > ? ORDER BY seq', Number(since))) {
          server.send(row.json);
        }
      }
    }
    return new Response(null, { status: 101, webSocket: client });
  }

  webSocketMessage(_socket, message) {
    this.seq += 1;
    this.sql.exec('INSERT INTO events (seq, json) VALUES (?, ?)', this.seq, message);
    for (const peer of this.ctx.getWebSockets('participant')) peer.send(message);
  }

  webSocketClose(socket, code) {
    try {
      socket.close(code === 1005 ? 1000 : code, 'closed');
    } catch {
      // already closed
    }
  }

  webSocketError() {}
}

export default {
  fetch(request, env) {
    const match = new URL(request.url).pathname.match(/^\/rooms\/([^/]+)\/ws$/);
    if (!match) return new Response('floor');
    return env.ROOMS.get(env.ROOMS.idFromName(match[1])).fetch(request);
  },
};
