//! Repository images, rebuilt when the branch moves: the rules of the scheduled step, pure and
//! tested natively. Which repositories are looked at in a run, whether a build is due for one,
//! and what a provider's answer about a running build changes. The step itself (provider,
//! GitHub, D1) is [`io::run`]; its SQL is in `index/images.rs`.

/// At most this many repositories have their head looked up in one run; the most overdue first.
pub const MAX_REPOS_PER_RUN: usize = 20;
/// A build still `building` this long after it started has failed.
pub const BUILD_TIMEOUT_MS: u64 = 60 * 60_000;
/// A failed build of the same head and runtime is tried again this long after it failed (a
/// failure that stays is shown, not retried at every check).
pub const RETRY_FAILED_AFTER_MS: u64 = 60 * 60_000;

/// A build's state, as D1 keeps it and `GET /images/:id` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Building,
    Ready,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Building => "building",
            Status::Ready => "ready",
            Status::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        [Status::Building, Status::Ready, Status::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// The latest build of a repository, as far as the decision needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastBuild {
    pub status: Status,
    pub branch: String,
    pub commit: String,
    pub runtime_version: String,
    /// When it became ready or failed.
    pub finished_ms: Option<u64>,
}

/// Why a build is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The repository has no build yet.
    First,
    /// The branch's head is not the commit of the latest build.
    HeadMoved,
    /// The provider's sandbox runtime is not the one the latest build was made for.
    RuntimeChanged,
    /// The latest build, of this very head and runtime, failed at least
    /// [`RETRY_FAILED_AFTER_MS`] ago.
    PreviousFailed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::First => "first build",
            Reason::HeadMoved => "the branch moved",
            Reason::RuntimeChanged => "the sandbox runtime changed",
            Reason::PreviousFailed => "the previous build failed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Build(Reason),
    /// A build is running; its outcome is asked for at the start of each run.
    Building,
    /// The latest image is of this head and runtime.
    UpToDate,
}

/// Whether to ask the provider for an image of `branch` at `head`, given the latest build.
pub fn decide(
    latest: Option<&LastBuild>,
    branch: &str,
    head: &str,
    runtime: &str,
    now_ms: u64,
) -> Decision {
    let Some(latest) = latest else {
        return Decision::Build(Reason::First);
    };
    if latest.status == Status::Building {
        return Decision::Building;
    }
    if latest.branch != branch || latest.commit != head {
        return Decision::Build(Reason::HeadMoved);
    }
    if latest.runtime_version != runtime {
        return Decision::Build(Reason::RuntimeChanged);
    }
    let failed_long_ago = latest
        .finished_ms
        .is_none_or(|at| now_ms.saturating_sub(at) >= RETRY_FAILED_AFTER_MS);
    match latest.status {
        Status::Failed if failed_long_ago => Decision::Build(Reason::PreviousFailed),
        Status::Failed | Status::Ready | Status::Building => Decision::UpToDate,
    }
}

/// The repositories whose head is looked up in this run: those never checked, then the longest
/// unchecked, among those whose last check is at least `refresh_ms` old; at most `limit`.
/// `checks` pairs each repository with when it was last checked.
pub fn due(
    checks: &[(String, Option<u64>)],
    now_ms: u64,
    refresh_ms: u64,
    limit: usize,
) -> Vec<String> {
    let mut due: Vec<&(String, Option<u64>)> = checks
        .iter()
        .filter(|(_, at)| at.is_none_or(|at| now_ms.saturating_sub(at) >= refresh_ms))
        .collect();
    due.sort_by_key(|(_, at)| *at);
    due.into_iter()
        .take(limit)
        .map(|(repo, _)| repo.clone())
        .collect()
}

/// What the provider said about a running build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Its `GET /images/:id` answer: status, image id, commit, error.
    Build {
        status: String,
        image_id: Option<String>,
        commit: Option<String>,
        error: Option<String>,
    },
    /// 404: the provider no longer knows the build (it was started again, say).
    Unknown,
    /// It could not be asked; the build stays as it is until the next run.
    Unreachable,
}

/// What a running build's record becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    Keep,
    Ready {
        image_id: String,
        commit: Option<String>,
    },
    Failed(String),
}

/// A running build, started at `started_ms`, after the provider's `answer`.
pub fn update(answer: Answer, started_ms: u64, now_ms: u64) -> Update {
    let overdue = now_ms.saturating_sub(started_ms) > BUILD_TIMEOUT_MS;
    let timed_out = || {
        Update::Failed(format!(
            "the build did not finish within {} minutes",
            BUILD_TIMEOUT_MS / 60_000
        ))
    };
    match answer {
        Answer::Build {
            status,
            image_id,
            commit,
            error,
        } => match (Status::parse(&status), image_id) {
            (Some(Status::Ready), Some(image_id)) => Update::Ready { image_id, commit },
            (Some(Status::Ready), None) => {
                Update::Failed("the provider reported the build ready without an image".into())
            }
            (Some(Status::Failed), _) => Update::Failed(
                error.unwrap_or_else(|| "the provider reported the build failed".into()),
            ),
            (Some(Status::Building), _) if overdue => timed_out(),
            (Some(Status::Building), _) => Update::Keep,
            (None, _) => Update::Failed(format!("the provider reported the status {status:?}")),
        },
        Answer::Unknown => Update::Failed("the provider no longer knows this build".into()),
        Answer::Unreachable if overdue => timed_out(),
        Answer::Unreachable => Update::Keep,
    }
}

/// An error as stored and shown to everyone who may see the repository: one line, at most 500
/// characters, and no userinfo in a URL (`https://user:token@host` → `https://***@host`), in
/// case a provider or git repeated a URL that carried a credential.
pub fn error_text(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    protocol::git::redact_userinfo(&line)
        .chars()
        .take(500)
        .collect()
}

#[cfg(target_arch = "wasm32")]
pub mod io;

#[cfg(test)]
mod tests {
    use super::*;

    fn build(status: Status, commit: &str, runtime: &str) -> LastBuild {
        LastBuild {
            status,
            branch: "main".into(),
            commit: commit.into(),
            runtime_version: runtime.into(),
            finished_ms: Some(1_000),
        }
    }

    #[test]
    fn a_build_is_due_when_the_head_or_the_runtime_moved_or_the_last_one_failed() {
        let check = |latest: Option<LastBuild>, head: &str, runtime: &str, expected: Decision| {
            assert_eq!(
                decide(
                    latest.as_ref(),
                    "main",
                    head,
                    runtime,
                    1_000 + RETRY_FAILED_AFTER_MS
                ),
                expected,
                "{latest:?} {head} {runtime}"
            );
        };
        check(None, "a", "r1", Decision::Build(Reason::First));
        check(
            Some(build(Status::Ready, "a", "r1")),
            "a",
            "r1",
            Decision::UpToDate,
        );
        check(
            Some(build(Status::Ready, "a", "r1")),
            "b",
            "r1",
            Decision::Build(Reason::HeadMoved),
        );
        check(
            Some(build(Status::Ready, "a", "r1")),
            "a",
            "r2",
            Decision::Build(Reason::RuntimeChanged),
        );
        check(
            Some(build(Status::Ready, "a", "r1")),
            "b",
            "r2",
            Decision::Build(Reason::HeadMoved),
        );
        check(
            Some(build(Status::Failed, "a", "r1")),
            "a",
            "r1",
            Decision::Build(Reason::PreviousFailed),
        );
        check(
            Some(build(Status::Failed, "a", "r1")),
            "b",
            "r1",
            Decision::Build(Reason::HeadMoved),
        );
        // A failure of the same head and runtime is shown for a while before it is retried.
        let recent = build(Status::Failed, "a", "r1");
        assert_eq!(
            decide(Some(&recent), "main", "a", "r1", 2_000),
            Decision::UpToDate
        );
        assert_eq!(
            decide(Some(&recent), "main", "b", "r1", 2_000),
            Decision::Build(Reason::HeadMoved)
        );
        // One build at a time per repository, whatever moved meanwhile.
        check(
            Some(build(Status::Building, "a", "r1")),
            "b",
            "r2",
            Decision::Building,
        );
        // Another default branch is a move too.
        let other = LastBuild {
            branch: "trunk".into(),
            ..build(Status::Ready, "a", "r1")
        };
        check(Some(other), "a", "r1", Decision::Build(Reason::HeadMoved));
    }

    #[test]
    fn the_most_overdue_repositories_are_checked_first_and_bounded() {
        let checks = vec![
            ("acme/a".to_string(), Some(1_000)),
            ("acme/b".to_string(), None),
            ("acme/c".to_string(), Some(9_500)),
            ("acme/d".to_string(), Some(500)),
        ];
        assert_eq!(
            due(&checks, 10_000, 1_000, 10),
            ["acme/b", "acme/d", "acme/a"]
        );
        assert_eq!(due(&checks, 10_000, 1_000, 2), ["acme/b", "acme/d"]);
        // A refresh of 0 checks every repository at every run.
        assert_eq!(due(&checks, 10_000, 0, 10).len(), 4);
        assert!(due(&[], 0, 0, 10).is_empty());
    }

    #[test]
    fn a_running_build_ends_as_the_provider_says_or_by_its_deadline() {
        let answer = |status: &str, image: Option<&str>, error: Option<&str>| Answer::Build {
            status: status.into(),
            image_id: image.map(Into::into),
            commit: Some("c".into()),
            error: error.map(Into::into),
        };
        assert_eq!(
            update(answer("ready", Some("img_1"), None), 0, 1),
            Update::Ready {
                image_id: "img_1".into(),
                commit: Some("c".into())
            }
        );
        assert!(matches!(
            update(answer("ready", None, None), 0, 1),
            Update::Failed(_)
        ));
        assert_eq!(
            update(answer("failed", None, Some("no such commit")), 0, 1),
            Update::Failed("no such commit".into())
        );
        assert_eq!(update(answer("building", None, None), 0, 1), Update::Keep);
        assert!(matches!(
            update(answer("building", None, None), 0, BUILD_TIMEOUT_MS + 1),
            Update::Failed(_)
        ));
        assert!(matches!(
            update(answer("odd", None, None), 0, 1),
            Update::Failed(_)
        ));
        assert!(matches!(update(Answer::Unknown, 0, 1), Update::Failed(_)));
        assert_eq!(update(Answer::Unreachable, 0, 1), Update::Keep);
        assert!(matches!(
            update(Answer::Unreachable, 0, BUILD_TIMEOUT_MS + 1),
            Update::Failed(_)
        ));
    }

    #[test]
    fn statuses_and_errors() {
        for status in [Status::Building, Status::Ready, Status::Failed] {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        assert_eq!(Status::parse("done"), None);
        assert_eq!(error_text("fatal:\n  bad\tobject"), "fatal: bad object");
        assert_eq!(error_text(&"x".repeat(600)).len(), 500);
        assert_eq!(
            error_text(
                "fatal: could not read from https://x-access-token:ghs_abc@github.com/acme/web.git"
            ),
            "fatal: could not read from https://***@github.com/acme/web.git"
        );
        assert_eq!(error_text("see http://host/a@b"), "see http://host/a@b");
    }
}
