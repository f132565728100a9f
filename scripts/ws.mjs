// A small interactive WebSocket client for trying a session by hand:
//   node scripts/ws.mjs '<ws_url>'
// Prints every frame it receives; each line you type is sent as a frame. A line that is not
// JSON is sent as a prompt, so typing `fix the login bug` just works.
import { createInterface } from "node:readline";
import { randomUUID } from "node:crypto";
import WebSocket from "ws";

const url = process.argv[2];
if (!url) {
  console.error("usage: node scripts/ws.mjs '<ws_url from POST /v1/sessions, /tokens or /tickets; its ticket works once, within 30 s>'");
  process.exit(2);
}
const socket = new WebSocket(url);
socket.on("open", () => {
  console.error("connected; type a prompt, or a JSON frame such as {\"type\":\"typing\"}");
  createInterface({ input: process.stdin }).on("line", (line) => {
    if (!line.trim()) return;
    const frame = line.trim().startsWith("{") ? line : JSON.stringify({ type: "prompt", content: line, client_request_id: randomUUID() });
    socket.send(frame);
  });
});
socket.on("message", (data) => console.log(data.toString()));
socket.on("unexpected-response", (_req, res) => {
  console.error(`refused: HTTP ${res.statusCode}`);
  process.exit(1);
});
socket.on("close", (code, reason) => {
  console.error(`closed: ${code} ${reason}`);
  process.exit(0);
});
socket.on("error", (error) => console.error(`error: ${error.message}`));
