//! What a bridge must not forget when its process dies: the critical frames and the answer
//! text (by offset, at most the outbox's bound) the room has not acknowledged, the ack id
//! counter, the prompt in progress and the prompts it finished. A
//! bridge started again for the same sandbox (by the provider, or by hand) reads it back, sends
//! the unacknowledged frames again, and reports the interrupted prompt as failed, so nothing
//! critical is lost or sent twice.
//!
//! One small JSON file per sandbox (0600), replaced atomically by writing a temporary file and
//! renaming it: in the bridge's own state folder when it has one (where the agent runs as
//! another user, which must neither read nor forge it), else inside the workspace's `.git`
//! folder (never committed, and a snapshot restored into a new sandbox carries another
//! sandbox's file, which is ignored).

use crate::error::{Error, Result};
use protocol::bridge::FromBridge;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Journal {
    pub ack_prefix: String,
    pub n_acks: u64,
    /// Critical frames and token text not yet acknowledged, oldest first.
    pub unacked: Vec<FromBridge>,
    /// The prompt received and not finished, if any.
    pub active: Option<String>,
    /// Prompts finished lately, oldest first, so a re-sent prompt does not run twice.
    pub finished: Vec<String>,
}

impl Journal {
    /// What the bridge was working on: the active prompt, else the last finished one.
    pub fn current_prompt(&self) -> Option<&str> {
        self.active
            .as_deref()
            .or(self.finished.last().map(String::as_str))
    }
}

pub struct JournalFile {
    path: PathBuf,
}

impl JournalFile {
    pub fn for_sandbox(
        workspace: &Path,
        sandbox_id: &str,
        state_dir: Option<&Path>,
    ) -> JournalFile {
        let git = workspace.join(".git");
        let dir = if let Some(state) = state_dir {
            state.to_path_buf()
        } else if git.is_dir() {
            git
        } else {
            workspace.to_path_buf()
        };
        JournalFile {
            path: dir.join(format!("bridge-journal-{sandbox_id}.json")),
        }
    }

    /// The journal left by an earlier process, if any (an unreadable one counts as none).
    pub fn load(&self) -> Option<Journal> {
        let text = std::fs::read(&self.path).ok()?;
        match serde_json::from_slice(&text) {
            Ok(journal) => Some(journal),
            Err(e) => {
                crate::log!("journal", "ignoring an unreadable journal: {e}");
                None
            }
        }
    }

    /// A failure is logged: the bridge goes on, and only a restart would miss what is lost.
    pub fn save(&self, journal: &Journal) {
        if let Err(e) = self.write(journal) {
            crate::log!("journal", "cannot save the journal: {e}");
        }
    }

    fn write(&self, journal: &Journal) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let temp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(journal)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut file| file.write_all(&bytes))
            .map_err(Error::io(format!("cannot write {}", temp.display())))?;
        std::fs::rename(&temp, &self.path)
            .map_err(Error::io(format!("cannot replace {}", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_the_git_folder() {
        let dir = std::env::temp_dir().join(format!("journal-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        let file = JournalFile::for_sandbox(&dir, "sbx_1", None);
        assert_eq!(file.load(), None);
        let journal = Journal {
            ack_prefix: "b1".into(),
            n_acks: 2,
            unacked: vec![FromBridge::Done {
                message_id: "m1".into(),
                ok: true,
                error: None,
                text_bytes: Some(3),
                ack_id: "b1-2".into(),
            }],
            active: None,
            finished: vec!["m0".into(), "m1".into()],
        };
        file.save(&journal);
        assert!(dir.join(".git/bridge-journal-sbx_1.json").is_file());
        assert_eq!(file.load(), Some(journal.clone()));
        assert_eq!(journal.current_prompt(), Some("m1"));
        std::fs::write(dir.join(".git/bridge-journal-sbx_1.json"), "{").unwrap();
        assert_eq!(file.load(), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
