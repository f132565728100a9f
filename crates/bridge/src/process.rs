//! Child processes in their own process groups: a shell command whose whole tree can be
//! stopped, and the group signals the provider and the agents use.

use crate::config::AgentEnv;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Child;

/// The unprivileged user the agent's processes run as, when it is not the bridge's own: set
/// only where the bridge runs as root (the local provider as root, Modal), so that the agent
/// can read neither the bridge's token file, its credential socket, its journal, nor its
/// `/proc` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentUser {
    pub uid: u32,
    pub gid: u32,
}

impl AgentUser {
    /// `name`, a uid with a passwd entry, or `uid:gid`; never root.
    pub fn lookup(name: &str) -> Result<AgentUser, String> {
        let unknown = || format!("no user {name:?}");
        let found = match name.split_once(':') {
            Some((uid, gid)) => match (uid.parse(), gid.parse()) {
                (Ok(uid), Ok(gid)) => Some(AgentUser { uid, gid }),
                _ => return Err(unknown()),
            },
            None => {
                let c_name = std::ffi::CString::new(name).map_err(|_| unknown())?;
                // SAFETY: getpwnam/getpwuid return null or a pointer to static storage, read
                // at once, before another call could overwrite it (called before the runtime
                // starts its threads).
                unsafe {
                    let mut entry = libc::getpwnam(c_name.as_ptr());
                    if entry.is_null() {
                        if let Ok(uid) = name.parse::<u32>() {
                            entry = libc::getpwuid(uid);
                        }
                    }
                    (!entry.is_null()).then(|| AgentUser {
                        uid: (*entry).pw_uid,
                        gid: (*entry).pw_gid,
                    })
                }
            }
        };
        match found {
            Some(user) if user.uid != 0 && user.gid != 0 => Ok(user),
            Some(_) => {
                Err("the agent's user must not be root: the point is that the agent is not".into())
            }
            None => Err(unknown()),
        }
    }

    /// `uid:gid`, as [`AgentUser::lookup`] reads it back.
    pub fn to_arg(self) -> String {
        format!("{}:{}", self.uid, self.gid)
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The command runs as `user` (when there is one): its uid and gid, and no supplementary
/// groups (std drops them when a root parent sets the uid).
pub fn run_as(cmd: &mut tokio::process::Command, user: Option<AgentUser>) {
    if let Some(user) = user {
        cmd.uid(user.uid).gid(user.gid);
    }
}

/// Gives `path` (and, when it is a folder, everything in it) to `user`; symbolic links are
/// changed themselves, never followed, so nothing outside is handed over.
pub async fn hand_over(path: &std::path::Path, user: AgentUser) -> crate::error::Result<()> {
    let output = tokio::process::Command::new("chown")
        .args(["-R", "-h", "-P"])
        .arg(user.to_arg())
        .arg("--")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(crate::error::Error::io("cannot run chown"))?;
    if !output.status.success() {
        return Err(crate::error::Error::CommandFailed {
            what: "handing files over to the agent's user",
            status: output.status,
            output: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Runs a short `sh` script as `user` (with `args` as `$1`…, `stdin` on its input) and waits:
/// what the bridge, as root, writes in the agent's home it writes with the agent's rights, so
/// a link the agent planted there leads nowhere the agent could not go itself.
pub fn sh_as(
    user: AgentUser,
    what: &'static str,
    script: &str,
    args: &[&std::ffi::OsStr],
    stdin: &[u8],
) -> crate::error::Result<()> {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .uid(user.uid)
        .gid(user.gid)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(crate::error::Error::io("cannot run sh"))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin)
            .map_err(crate::error::Error::io("cannot write to sh"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(crate::error::Error::io("cannot run sh"))?;
    if !output.status.success() {
        return Err(crate::error::Error::CommandFailed {
            what,
            status: output.status,
            output: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Sends `signal` to every process in the group led by `pgid`; false if there was none.
pub fn signal_group(pgid: u32, signal: i32) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill(2) has no memory effects; a negative pid addresses the process group.
    unsafe { libc::kill(-pgid, signal) == 0 }
}

/// Marks this process not dumpable (`PR_SET_DUMPABLE` 0): no core file, and `/proc/<pid>/mem`,
/// `environ` and the like become closed to other processes of the same user (ptrace rules);
/// only a process with `CAP_SYS_PTRACE` (root) still gets in. Children start dumpable again at
/// `exec`, so this protects the bridge and the provider alone. Linux; elsewhere a no-op.
pub fn forbid_dumps() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_DUMPABLE) changes a flag of this process and touches no memory.
    unsafe {
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) == -1 {
            eprintln!(
                "bridge: cannot turn PR_SET_DUMPABLE off: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// The child gets SIGTERM when this process dies, however it dies, so a killed bridge or
/// provider leaves no agent server or bridge behind (Linux; elsewhere a no-op).
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe, and the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// SIGTERM to the child's group, SIGKILL after `grace`, then reaps the child.
pub async fn terminate_group(child: &mut Child, grace: Duration) {
    let Some(pgid) = child.id() else {
        // Already reaped.
        return;
    };
    signal_group(pgid, libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        signal_group(pgid, libc::SIGKILL);
        let _ = child.wait().await;
    }
    // Anything the leader left behind in its group goes too.
    signal_group(pgid, libc::SIGKILL);
}

#[derive(Debug, PartialEq, Eq)]
pub enum ShellOutcome {
    Exited {
        /// `None` when a signal ended it.
        code: Option<i32>,
        /// stdout and stderr interleaved as written, cut to the limit.
        output: String,
        cut: bool,
    },
    Stopped,
}

/// How long to keep reading after the command exited, in case something it started in the
/// background still holds the output pipe open.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

/// Runs `sh -c command` in `dir`, in a new process group, as `user` when there is one, with
/// `env` added to the bridge's environment, collecting at most `limit` bytes of combined output. When `stop` resolves
/// first, the whole group is killed.
pub async fn run_shell(
    command: &str,
    dir: &Path,
    env: &AgentEnv,
    user: Option<AgentUser>,
    limit: usize,
    stop: impl Future<Output = ()>,
) -> std::io::Result<ShellOutcome> {
    let (reader, writer) = std::io::pipe()?;
    let mut child = {
        // One pipe for both streams keeps their lines in the order they were written; the
        // command (holding the write ends) is dropped right away so the read end sees EOF.
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .current_dir(dir)
            .env_remove("SANDBOX_TOKEN")
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .process_group(0)
            .kill_on_drop(true);
        run_as(&mut cmd, user);
        die_with_parent(&mut cmd);
        cmd.spawn()?
    };
    let pgid = child.id();
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))?;
    let mut buf = Vec::new();
    let mut cut = false;
    let mut status = None;
    {
        let reading = read_capped(&mut pipe, &mut buf, &mut cut, limit);
        let waiting = child.wait();
        tokio::pin!(reading, waiting, stop);
        let mut read_done = false;
        let drain_deadline = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(drain_deadline);
        loop {
            tokio::select! {
                _ = &mut reading, if !read_done => {
                    read_done = true;
                    if status.is_some() { break; }
                }
                exit = &mut waiting, if status.is_none() => {
                    status = Some(exit?);
                    if read_done { break; }
                    drain_deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
                }
                _ = &mut drain_deadline, if status.is_some() => break,
                _ = &mut stop => {
                    if let Some(pgid) = pgid {
                        signal_group(pgid, libc::SIGKILL);
                    }
                    if status.is_none() {
                        let _ = (&mut waiting).await;
                    }
                    return Ok(ShellOutcome::Stopped);
                }
            }
        }
    }
    let code = status.and_then(|s| s.code());
    Ok(ShellOutcome::Exited {
        code,
        output: lossy_prefix(&buf),
        cut,
    })
}

async fn read_capped(
    pipe: &mut tokio::net::unix::pipe::Receiver,
    buf: &mut Vec<u8>,
    cut: &mut bool,
    limit: usize,
) {
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = limit.saturating_sub(buf.len());
                if n > room {
                    *cut = true;
                }
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

/// The bytes as text; a character cut in half at the limit is dropped rather than mangled.
fn lossy_prefix(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Cuts `text` to at most `limit` bytes on a character boundary.
pub fn cut_text(text: &str, limit: usize) -> (&str, bool) {
    if text.len() <= limit {
        return (text, false);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn collects_both_streams_and_the_exit_code() {
        let outcome = rt()
            .block_on(run_shell(
                "echo out; echo err >&2; exit 3",
                Path::new("."),
                &AgentEnv::new(),
                None,
                1024,
                std::future::pending(),
            ))
            .unwrap();
        assert_eq!(
            outcome,
            ShellOutcome::Exited {
                code: Some(3),
                output: "out\nerr\n".into(),
                cut: false
            }
        );
    }

    #[test]
    fn the_agent_env_reaches_the_command() {
        let env = vec![("BRIDGE_TEST_KEY".to_string(), "k-123".into())];
        let outcome = rt()
            .block_on(run_shell(
                "printenv BRIDGE_TEST_KEY",
                Path::new("."),
                &env,
                None,
                1024,
                std::future::pending(),
            ))
            .unwrap();
        assert_eq!(
            outcome,
            ShellOutcome::Exited {
                code: Some(0),
                output: "k-123\n".into(),
                cut: false
            }
        );
    }

    #[test]
    fn cuts_long_output() {
        let outcome = rt()
            .block_on(run_shell(
                "yes | head -c 100000",
                Path::new("."),
                &AgentEnv::new(),
                None,
                1000,
                std::future::pending(),
            ))
            .unwrap();
        match outcome {
            ShellOutcome::Exited { code, output, cut } => {
                assert_eq!(code, Some(0));
                assert_eq!(output.len(), 1000);
                assert!(cut);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stop_kills_the_whole_group() {
        let runtime = rt();
        let started = std::time::Instant::now();
        let outcome = runtime
            .block_on(run_shell(
                "sleep 30 & sleep 30",
                Path::new("."),
                &AgentEnv::new(),
                None,
                1024,
                async { tokio::time::sleep(Duration::from_millis(100)).await },
            ))
            .unwrap();
        assert_eq!(outcome, ShellOutcome::Stopped);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn background_children_do_not_hold_the_result() {
        let pid_file = std::env::temp_dir().join(crate::ids::random_id("bridge-bg-").unwrap());
        let started = std::time::Instant::now();
        let outcome = rt()
            .block_on(run_shell(
                &format!("sleep 5 & echo $! > {}; echo done", pid_file.display()),
                Path::new("."),
                &AgentEnv::new(),
                None,
                1024,
                std::future::pending(),
            ))
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(4));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SAFETY: plain kill(2) of the sleep this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = std::fs::remove_file(&pid_file);
        assert_eq!(
            outcome,
            ShellOutcome::Exited {
                code: Some(0),
                output: "done\n".into(),
                cut: false
            }
        );
    }

    #[test]
    fn cuts_on_character_boundaries() {
        assert_eq!(cut_text("héllo", 2), ("h", true));
        assert_eq!(cut_text("héllo", 3), ("hé", true));
        assert_eq!(cut_text("hi", 5), ("hi", false));
        assert_eq!(lossy_prefix("hé".as_bytes()[..2].as_ref()), "h");
    }
}
