// Running the Rust load generator: one JSON job in, one JSON result out. A job may stop at
// checkpoints (`{"checkpoint": …}` lines) to let the orchestrator measure the server; the
// answer goes back on the load generator's stdin.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

export function loadgenRunner(binary, jobDir) {
  let count = 0;
  return async function loadgen(job, { onCheckpoint } = {}) {
    count += 1;
    const file = path.join(jobDir, `job-${count}-${job.kind}.json`);
    fs.writeFileSync(file, JSON.stringify(job));
    const child = spawn(binary, [file], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
    let result = null;
    for await (const line of readline.createInterface({ input: child.stdout })) {
      let message;
      try {
        message = JSON.parse(line);
      } catch {
        process.stderr.write(`  loadgen (stdout): ${line}\n`);
        continue;
      }
      if (message && 'checkpoint' in message) {
        const answer = onCheckpoint ? await onCheckpoint(message.checkpoint) : null;
        child.stdin.write(`${JSON.stringify(answer ?? null)}\n`);
      } else {
        result = message;
      }
    }
    const code = await exited;
    child.stdin.destroy();
    if (!result) throw new Error(`loadgen ${job.kind} exited with ${code} and no result`);
    if (result.error) throw new Error(`loadgen ${job.kind}: ${result.error}`);
    return result;
  };
}
