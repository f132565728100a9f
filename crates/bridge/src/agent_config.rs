//! The agent's own configuration, one source for every provider (the local provider and the
//! Modal image run the same bridge): `AGENTS.md` with the git workflow rules and
//! `opencode.json` with the MCP servers, from the templates in `agent-config/`. They are
//! written to OpenCode's global config folder in the sandbox's `HOME`, never into the
//! workspace, so nothing of them can be committed to the user's repository.
//!
//! The servers kept are those whose requirement holds ([`REQUIREMENTS`]): a local server when
//! its program is installed, a remote one when its key is in the agent's environment (the
//! config names the key as `{env:NAME}`, so its value is never written down).
//!
//! The memory server's file is a stable path in `HOME` ([`Memory`]), linked to the folder of
//! the session's repository and owner when the first prompt says who that is: a sandbox may
//! have started (and OpenCode with it) before it knew its session.

use crate::error::{Error, Result};
use crate::process::AgentUser;
use protocol::bridge::MemoryScope;
use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub const AGENTS_MD: &str = include_str!("../agent-config/AGENTS.md");
pub const OPENCODE_JSON: &str = include_str!("../agent-config/opencode.json");

/// What an MCP server of the template needs to be kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// These programs on `PATH` (`@CHROMIUM@` stands for the browser).
    Programs(&'static [&'static str]),
    /// This variable in the agent's environment.
    Key(&'static str),
}

/// Every server of the template, once; a test checks the two agree.
pub const REQUIREMENTS: &[(&str, Requirement)] = &[
    ("memory", Requirement::Programs(&["mcp-server-memory"])),
    (
        "filesystem",
        Requirement::Programs(&["mcp-server-filesystem"]),
    ),
    (
        "playwright",
        Requirement::Programs(&["playwright-mcp", "@CHROMIUM@"]),
    ),
    ("github", Requirement::Key("GITHUB_TOKEN")),
    ("sentry", Requirement::Key("SENTRY_ACCESS_TOKEN")),
    ("linear", Requirement::Key("LINEAR_API_KEY")),
];

/// The settings the templates are filled with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSettings {
    pub workspace: PathBuf,
    /// The memory server's file (a stable path; see [`Memory`]).
    pub memory_file: PathBuf,
    /// The browser the playwright server drives.
    pub chromium: String,
    pub github_mcp_url: String,
    pub sentry_mcp_url: String,
    pub linear_mcp_url: String,
}

/// `opencode.json` for these settings: the servers whose requirement holds, with the
/// placeholders filled in. `has_key` says whether the agent's environment holds a variable,
/// `installed` whether a program can be found.
pub fn opencode_config(
    settings: &AgentSettings,
    has_key: impl Fn(&str) -> bool,
    installed: impl Fn(&str) -> bool,
) -> Value {
    let mut config: Value =
        serde_json::from_str(OPENCODE_JSON).expect("agent-config/opencode.json is JSON");
    if let Some(servers) = config.get_mut("mcp").and_then(Value::as_object_mut) {
        servers.retain(|name, _| {
            let requirement = REQUIREMENTS.iter().find(|(n, _)| n == name).map(|r| r.1);
            match requirement {
                Some(Requirement::Programs(programs)) => programs.iter().all(|p| {
                    if *p == "@CHROMIUM@" {
                        installed(&settings.chromium)
                    } else {
                        installed(p)
                    }
                }),
                Some(Requirement::Key(key)) => has_key(key),
                None => false,
            }
        });
    }
    fill(&mut config, settings);
    config
}

/// Replaces the placeholders in every string of `value`.
fn fill(value: &mut Value, settings: &AgentSettings) {
    match value {
        Value::String(text) => {
            let filled = text
                .replace("@WORKSPACE@", &settings.workspace.to_string_lossy())
                .replace("@MEMORY_FILE@", &settings.memory_file.to_string_lossy())
                .replace("@CHROMIUM@", &settings.chromium)
                .replace("@GITHUB_MCP_URL@", &settings.github_mcp_url)
                .replace("@SENTRY_MCP_URL@", &settings.sentry_mcp_url)
                .replace("@LINEAR_MCP_URL@", &settings.linear_mcp_url);
            *text = filled;
        }
        Value::Array(items) => items.iter_mut().for_each(|item| fill(item, settings)),
        Value::Object(fields) => fields.values_mut().for_each(|item| fill(item, settings)),
        _ => {}
    }
}

/// OpenCode's global config folder: `$XDG_CONFIG_HOME/opencode`, else `~/.config/opencode`.
pub fn opencode_config_dir(home: &Path, xdg_config_home: Option<&Path>) -> PathBuf {
    match xdg_config_home {
        Some(dir) if dir.is_absolute() => dir.join("opencode"),
        _ => home.join(".config").join("opencode"),
    }
}

/// Writes `AGENTS.md` and `opencode.json` into `dir` (created if missing), as `user` when the
/// agent has a user of its own: the folder is in the agent's home, where a root bridge must
/// not follow what the agent may have put there.
pub fn write_opencode_files(dir: &Path, config: &Value, user: Option<AgentUser>) -> Result<()> {
    let json = serde_json::to_string_pretty(config)
        .map_err(|e| Error::Invalid(format!("cannot write the OpenCode config: {e}")))?;
    if let Some(user) = user {
        return crate::process::sh_as(
            user,
            "writing the agent's configuration",
            r#"set -e; umask 022; mkdir -p -- "$1"; cat > "$1/opencode.json"; printf '%s' "$2" > "$1/AGENTS.md""#,
            &[dir.as_os_str(), std::ffi::OsStr::new(AGENTS_MD)],
            json.as_bytes(),
        );
    }
    std::fs::create_dir_all(dir).map_err(Error::io(format!("cannot create {}", dir.display())))?;
    std::fs::write(dir.join("opencode.json"), json)
        .map_err(Error::io("cannot write opencode.json"))?;
    std::fs::write(dir.join("AGENTS.md"), AGENTS_MD).map_err(Error::io("cannot write AGENTS.md"))
}

/// Whether `program` names an executable file, directly or on `path` (`PATH`'s value).
pub fn installed(program: &str, path: Option<&OsString>) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return executable(Path::new(program));
    }
    path.is_some_and(|path| std::env::split_paths(path).any(|dir| executable(&dir.join(program))))
}

/// The memory server's file: a stable path in the sandbox's `HOME`
/// (`~/.local/share/agent-memory/memory.jsonl`) whose folder is a link to
/// `<memory dir>/<repo>/<owner>` once the session is known. The folder is linked, not the
/// file: the server writes a temporary file beside it and renames it over, which would replace
/// a linked file. Without a memory folder (a provider that keeps none) the folder is a plain
/// one in `HOME`, for this sandbox alone.
#[derive(Debug)]
pub struct Memory {
    /// Where the memory server reads and writes.
    pub file: PathBuf,
    /// The stable folder of `file`.
    folder: PathBuf,
    /// The provider's persistent memory folder, if any.
    dir: Option<PathBuf>,
    /// The agent's own user, if it has one: the owner's folder becomes its, and the link in
    /// its home is made with its rights.
    user: Option<AgentUser>,
    linked: Option<MemoryScope>,
}

impl Memory {
    pub fn new(home: &Path, dir: Option<PathBuf>) -> Self {
        let folder = home.join(".local/share/agent-memory");
        Memory {
            file: folder.join("memory.jsonl"),
            folder,
            dir,
            user: None,
            linked: None,
        }
    }

    /// The agent runs as `user`.
    pub fn run_as(mut self, user: Option<AgentUser>) -> Self {
        self.user = user;
        self
    }

    /// Points the stable folder at `scope`'s memory; once per scope (a sandbox serves one
    /// session, so in practice once).
    pub fn link(&mut self, scope: &MemoryScope) -> Result<()> {
        if self.linked.as_ref() == Some(scope) {
            return Ok(());
        }
        let Some(dir) = &self.dir else {
            match self.user {
                Some(user) => crate::process::sh_as(
                    user,
                    "creating the memory folder",
                    r#"mkdir -p -- "$1""#,
                    &[self.folder.as_os_str()],
                    b"",
                )?,
                None => std::fs::create_dir_all(&self.folder)
                    .map_err(Error::io("cannot create the memory folder"))?,
            }
            self.linked = Some(scope.clone());
            return Ok(());
        };
        let target = dir.join(scope.relative_dir());
        match self.user {
            Some(user) => {
                // The repository's folder stays the bridge's and unlistable (0711), so an agent
                // finds no other owner's folder; the owner's folder is the agent's (0700).
                use std::os::unix::fs::DirBuilderExt;
                if let Some(repo) = target.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o711)
                        .create(repo)
                        .map_err(Error::io(format!("cannot create {}", repo.display())))?;
                }
                match std::fs::DirBuilder::new().mode(0o700).create(&target) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                        return Err(Error::io(format!("cannot create {}", target.display()))(e))
                    }
                    _ => {}
                }
                std::os::unix::fs::lchown(&target, Some(user.uid), Some(user.gid))
                    .map_err(Error::io(format!("cannot hand over {}", target.display())))?;
                // A folder in its place holds nothing of a session (none was known): it goes;
                // a new link beside the old one, renamed over it: the server never finds none.
                crate::process::sh_as(
                    user,
                    "linking the memory folder",
                    r#"set -e; mkdir -p -- "$(dirname -- "$2")"; if [ -d "$2" ] && [ ! -L "$2" ]; then rm -rf -- "$2"; fi; ln -sfn -- "$1" "$2.link"; mv -fT -- "$2.link" "$2""#,
                    &[target.as_os_str(), self.folder.as_os_str()],
                    b"",
                )?;
                self.linked = Some(scope.clone());
                return Ok(());
            }
            None => std::fs::create_dir_all(&target)
                .map_err(Error::io(format!("cannot create {}", target.display())))?,
        }
        if let Some(parent) = self.folder.parent() {
            std::fs::create_dir_all(parent)
                .map_err(Error::io("cannot create the memory link's folder"))?;
        }
        // A folder in its place holds nothing of a session (none was known): it goes.
        if std::fs::symlink_metadata(&self.folder).is_ok_and(|m| m.is_dir()) {
            std::fs::remove_dir_all(&self.folder)
                .map_err(Error::io("cannot replace the memory folder"))?;
        }
        // A new link beside the old one, renamed over it: the server never finds none.
        let staged = self.folder.with_extension("link");
        let _ = std::fs::remove_file(&staged);
        std::os::unix::fs::symlink(&target, &staged)
            .map_err(Error::io("cannot link the memory folder"))?;
        std::fs::rename(&staged, &self.folder)
            .map_err(Error::io("cannot link the memory folder"))?;
        self.linked = Some(scope.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AgentSettings {
        AgentSettings {
            workspace: "/work/ws".into(),
            memory_file: "/home/agent/.local/share/agent-memory/memory.jsonl".into(),
            chromium: "/usr/bin/chromium".into(),
            github_mcp_url: "https://github.example/mcp".into(),
            sentry_mcp_url: "https://sentry.example/mcp".into(),
            linear_mcp_url: "https://linear.example/mcp".into(),
        }
    }

    fn servers(config: &Value) -> Vec<String> {
        let mut names: Vec<String> = config["mcp"].as_object().unwrap().keys().cloned().collect();
        names.sort();
        names
    }

    #[test]
    fn every_server_of_the_template_has_its_requirement() {
        let template: Value = serde_json::from_str(OPENCODE_JSON).unwrap();
        let mut in_template: Vec<&str> = template["mcp"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut in_table: Vec<&str> = REQUIREMENTS.iter().map(|(name, _)| *name).collect();
        in_template.sort();
        in_table.sort();
        assert_eq!(in_template, in_table);
        for rule in [
            "Commit often",
            "Never run `git pull`",
            "`git stash`",
            "commit a snapshot",
            "`git fetch`, then `git rebase",
        ] {
            assert!(AGENTS_MD.contains(rule), "AGENTS.md says {rule:?}");
        }
    }

    #[test]
    fn local_servers_need_their_programs_and_remote_ones_their_keys() {
        let all = opencode_config(&settings(), |_| true, |_| true);
        assert_eq!(
            servers(&all),
            [
                "filesystem",
                "github",
                "linear",
                "memory",
                "playwright",
                "sentry"
            ]
        );
        assert_eq!(
            all["mcp"]["memory"]["environment"]["MEMORY_FILE_PATH"],
            "/home/agent/.local/share/agent-memory/memory.jsonl"
        );
        assert_eq!(all["mcp"]["filesystem"]["command"][1], "/work/ws");
        let playwright: Vec<&str> = all["mcp"]["playwright"]["command"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(playwright
            .windows(2)
            .any(|w| w == ["--executable-path", "/usr/bin/chromium"]));
        assert_eq!(all["mcp"]["github"]["url"], "https://github.example/mcp");
        // The key is named, never written.
        assert_eq!(
            all["mcp"]["github"]["headers"]["Authorization"],
            "Bearer {env:GITHUB_TOKEN}"
        );
        assert_eq!(all["mcp"]["linear"]["url"], "https://linear.example/mcp");
        assert!(
            !all.to_string().contains('@'),
            "every placeholder is filled: {all}"
        );

        let none = opencode_config(&settings(), |_| false, |_| false);
        assert!(servers(&none).is_empty());

        let only_github_and_memory = opencode_config(
            &settings(),
            |key| key == "GITHUB_TOKEN",
            |program| program == "mcp-server-memory" || program == "playwright-mcp",
        );
        // Playwright without a browser is left out.
        assert_eq!(servers(&only_github_and_memory), ["github", "memory"]);
        let with_browser = opencode_config(&settings(), |key| key == "LINEAR_API_KEY", |_| true);
        assert_eq!(
            servers(&with_browser),
            ["filesystem", "linear", "memory", "playwright"]
        );
    }

    #[test]
    fn config_folder_and_programs() {
        assert_eq!(
            opencode_config_dir(Path::new("/h"), None),
            PathBuf::from("/h/.config/opencode")
        );
        assert_eq!(
            opencode_config_dir(Path::new("/h"), Some(Path::new("/x"))),
            PathBuf::from("/x/opencode")
        );
        assert_eq!(
            opencode_config_dir(Path::new("/h"), Some(Path::new("rel"))),
            PathBuf::from("/h/.config/opencode")
        );
        let path = OsString::from("/nonexistent:/bin:/usr/bin");
        assert!(installed("sh", Some(&path)));
        assert!(installed("/bin/sh", None));
        assert!(!installed("no-such-program-here", Some(&path)));
        assert!(!installed("sh", None));
    }

    #[test]
    fn files_are_written_and_memory_is_linked_per_repository_and_owner() {
        let root = std::env::temp_dir().join(crate::ids::random_id("agent-config-").unwrap());
        let home = root.join("home");
        let config_dir = opencode_config_dir(&home, None);
        write_opencode_files(
            &config_dir,
            &opencode_config(&settings(), |_| false, |_| true),
            None,
        )
        .unwrap();
        let written: Value = serde_json::from_str(
            &std::fs::read_to_string(config_dir.join("opencode.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(written["mcp"]["filesystem"]["command"][1], "/work/ws");
        assert_eq!(
            std::fs::read_to_string(config_dir.join("AGENTS.md")).unwrap(),
            AGENTS_MD
        );

        let memories = root.join("memory");
        let mut memory = Memory::new(&home, Some(memories.clone()));
        let ada = MemoryScope {
            repo: "acme/demo".into(),
            owner: "usr_ada".into(),
        };
        memory.link(&ada).unwrap();
        // As the memory server writes: a temporary file beside it, renamed over it.
        let temp = memory.file.with_extension("jsonl.tmp");
        std::fs::write(&temp, "{\"type\":\"entity\"}\n").unwrap();
        std::fs::rename(&temp, &memory.file).unwrap();
        let ada_file = memories.join("acme__demo/usr_ada/memory.jsonl");
        assert_eq!(
            std::fs::read_to_string(&ada_file).unwrap(),
            "{\"type\":\"entity\"}\n"
        );
        // Another owner (a later sandbox of another session) gets a memory of their own.
        let mut other = Memory::new(&root.join("home2"), Some(memories.clone()));
        let bob = MemoryScope {
            repo: "acme/demo".into(),
            owner: "usr_bob".into(),
        };
        other.link(&bob).unwrap();
        assert!(
            std::fs::read_to_string(&other.file).is_err(),
            "Bob's memory starts empty"
        );
        std::fs::write(&other.file, "bob\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&ada_file).unwrap(),
            "{\"type\":\"entity\"}\n"
        );
        // Linked again to the same scope: nothing changes; to another: the link moves.
        memory.link(&ada).unwrap();
        memory.link(&bob).unwrap();
        assert_eq!(std::fs::read_to_string(&memory.file).unwrap(), "bob\n");
        // Without a memory folder the file is the sandbox's own.
        let mut local = Memory::new(&root.join("home3"), None);
        local.link(&ada).unwrap();
        assert!(!local.file.exists());
        assert!(local.file.parent().unwrap().is_dir());
        std::fs::write(&local.file, "local\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&ada_file).unwrap(),
            "{\"type\":\"entity\"}\n"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
