//! Load generator for the coordinator benchmark.
//!
//! Layout:
//! - [`conn`]: opening participant and bridge WebSockets (no Nagle, one reader task each).
//! - [`frames`]: finding what the benchmark needs in a frame without parsing all of it.
//! - [`procfs`]: CPU time and RSS of this process and of the server, from `/proc`.
//! - [`stats`]: percentiles and the JSON shape of a latency summary.
//! - [`fanout`]: scenarios 1 and 2, fan-out latency at a fixed rate and saturation throughput.
//! - [`ingest`]: scenario 3, a fake bridge streaming token frames to 16 watchers.
//! - [`provider`]: the fake sandbox provider scenario 3 needs (a few lines of HTTP/1.1).
//! - [`replay`]: scenario 4, filling a session and timing reconnects that replay it.
//! - [`cold`]: scenario 5, time to `welcome` on a fresh runtime, a fresh room and a warm one.
//! - [`soak`]: `npm run soak`, prompts at a steady rate for minutes, with a checkpoint every few
//!   seconds so the orchestrator can sample the server's memory.
//!
//! `loadgen <job.json>` runs one job and prints its result as one JSON line on stdout;
//! progress goes to stderr. A job may print `{"checkpoint":…}` lines and wait for a line on
//! stdin, so the orchestrator can measure the server (SQLite files) between runs.

mod cold;
mod conn;
mod fanout;
mod frames;
mod ingest;
mod procfs;
mod provider;
mod replay;
mod soak;
mod stats;

use serde_json::Value;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: loadgen <job.json>");
        std::process::exit(2);
    };
    let job: Value = match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(job) => job,
        Err(error) => {
            eprintln!("loadgen: cannot read {path}: {error}");
            std::process::exit(2);
        }
    };
    let outcome = match job["kind"].as_str().unwrap_or("") {
        "fanout" => fanout::run(&job).await,
        "ingest" => ingest::run(&job).await,
        "replay" => replay::run(&job).await,
        "cold" => cold::run(&job).await,
        "soak" => soak::run(&job).await,
        other => Err(format!("unknown job kind {other:?}")),
    };
    match outcome {
        Ok(result) => println!("{result}"),
        Err(error) => {
            println!("{}", serde_json::json!({ "error": error }));
            std::process::exit(1);
        }
    }
}

/// Prints a progress line to stderr.
pub fn say(text: impl AsRef<str>) {
    eprintln!("  loadgen: {}", text.as_ref());
}

/// Tells the orchestrator a run is done and waits for it to answer (one line on stdin).
pub async fn checkpoint(what: Value) -> Result<Value, String> {
    use tokio::io::AsyncBufReadExt;
    println!("{}", serde_json::json!({ "checkpoint": what }));
    let mut line = String::new();
    tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    Ok(serde_json::from_str(line.trim()).unwrap_or(Value::Null))
}
