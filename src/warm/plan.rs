//! One step of the warm pool, decided from what D1 holds, the settings and the time.
//! Pure, so `cargo test` covers every rule.

use crate::config::WarmConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WarmStatus {
    /// The provider is being asked; not claimable yet.
    Starting,
    Warm,
    Claimed,
    Retired,
}

impl WarmStatus {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "starting" => WarmStatus::Starting,
            "warm" => WarmStatus::Warm,
            "claimed" => WarmStatus::Claimed,
            "retired" => WarmStatus::Retired,
            _ => return None,
        })
    }
}

/// A row of `warm_sandboxes` as the step sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolRow {
    pub id: String,
    /// Lower case `owner/name`.
    pub repo: String,
    pub branch: String,
    pub image_id: Option<String>,
    pub status: WarmStatus,
    pub created_at: u64,
    /// A retired one the provider was told to delete.
    pub deleted: bool,
}

/// What a repository's pool should look like now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// As `WARM_POOL` writes it.
    pub repo: String,
    pub size: u32,
    /// The branch warm sandboxes are prepared on (the repository's default).
    pub branch: String,
    /// The latest image; warm sandboxes of any other are retired.
    pub image_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Rows to retire now (never claimed again); their sandboxes are deleted next.
    pub retire: Vec<String>,
    /// Retired rows whose sandbox the provider is to delete.
    pub delete: Vec<String>,
    /// How many to start, per target repository (as `WARM_POOL` writes it).
    pub start: Vec<(String, u32)>,
}

/// A starting row older than this never got its provider's answer: retired.
pub const START_TIMEOUT_MS: u64 = 5 * 60_000;

/// Whether a warm sandbox created at `created_at` may still be claimed at `now_ms`.
pub fn fresh(created_at: u64, now_ms: u64, config: &WarmConfig) -> bool {
    created_at + config.max_age_ms > now_ms
}

/// The step: every starting or warm row that is too old, of a repository no longer pooled, on
/// another branch or from another image than the latest is retired, and so is any beyond the
/// pool's size (the oldest first); retired rows not yet deleted are deleted; each pool is
/// topped up to its size. `only` limits the step to one repository (a top-up after a claim).
pub fn plan(config: &WarmConfig, targets: &[Target], rows: &[PoolRow], now_ms: u64) -> Plan {
    let mut plan = Plan::default();
    let target_of = |repo: &str| {
        targets
            .iter()
            .find(|t| t.repo.eq_ignore_ascii_case(repo) && t.size > 0)
    };
    let mut live: Vec<&PoolRow> = Vec::new();
    for row in rows {
        match row.status {
            WarmStatus::Retired => {
                if !row.deleted {
                    plan.delete.push(row.id.clone());
                }
            }
            WarmStatus::Claimed => {}
            WarmStatus::Starting | WarmStatus::Warm => {
                let keep = target_of(&row.repo).is_some_and(|t| {
                    t.branch == row.branch
                        && t.image_id == row.image_id
                        && fresh(row.created_at, now_ms, config)
                        && (row.status == WarmStatus::Warm
                            || row.created_at + START_TIMEOUT_MS > now_ms)
                });
                if keep {
                    live.push(row);
                } else {
                    plan.retire.push(row.id.clone());
                }
            }
        }
    }
    for target in targets.iter().filter(|t| t.size > 0) {
        let mut of_repo: Vec<&&PoolRow> = live
            .iter()
            .filter(|r| r.repo.eq_ignore_ascii_case(&target.repo))
            .collect();
        of_repo.sort_by_key(|r| r.created_at);
        let size = target.size as usize;
        if of_repo.len() > size {
            let surplus = of_repo.len() - size;
            plan.retire
                .extend(of_repo.iter().take(surplus).map(|r| r.id.clone()));
        } else if of_repo.len() < size {
            plan.start
                .push((target.repo.clone(), (size - of_repo.len()) as u32));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;

    fn config() -> WarmConfig {
        WarmConfig {
            pool: [("acme/demo".to_owned(), 2)].into(),
            max_age_ms: 25 * MINUTE,
        }
    }

    fn target(size: u32, image: Option<&str>) -> Target {
        Target {
            repo: "acme/demo".into(),
            size,
            branch: "main".into(),
            image_id: image.map(str::to_owned),
        }
    }

    fn row(id: &str, status: WarmStatus, created_at: u64, image: Option<&str>) -> PoolRow {
        PoolRow {
            id: id.into(),
            repo: "acme/demo".into(),
            branch: "main".into(),
            image_id: image.map(str::to_owned),
            status,
            created_at,
            deleted: false,
        }
    }

    fn check(
        targets: &[Target],
        rows: &[PoolRow],
        now: u64,
        retire: &[&str],
        delete: &[&str],
        start: u32,
    ) {
        let plan = plan(&config(), targets, rows, now);
        assert_eq!(plan.retire, retire, "retire");
        assert_eq!(plan.delete, delete, "delete");
        let started: u32 = plan.start.iter().map(|(_, n)| n).sum();
        assert_eq!(started, start, "start");
    }

    #[test]
    fn an_empty_pool_is_filled() {
        check(&[target(2, None)], &[], 0, &[], &[], 2);
        // Not pooled: nothing.
        check(&[target(0, None)], &[], 0, &[], &[], 0);
    }

    #[test]
    fn stale_ones_are_retired_and_replaced() {
        let now = 30 * MINUTE;
        let rows = [
            row("old", WarmStatus::Warm, now - 25 * MINUTE, None),
            row("young", WarmStatus::Warm, now - 24 * MINUTE, None),
        ];
        check(&[target(2, None)], &rows, now, &["old"], &[], 1);
        assert!(!fresh(now - 25 * MINUTE, now, &config()));
        assert!(fresh(now - 25 * MINUTE + 1, now, &config()));
    }

    #[test]
    fn a_new_image_retires_the_pool() {
        let rows = [
            row("a", WarmStatus::Warm, 0, Some("im_1")),
            row("b", WarmStatus::Starting, 0, Some("im_1")),
        ];
        check(
            &[target(2, Some("im_2"))],
            &rows,
            MINUTE,
            &["a", "b"],
            &[],
            2,
        );
        check(&[target(2, Some("im_1"))], &rows, MINUTE, &[], &[], 0);
    }

    #[test]
    fn retired_ones_are_deleted_once_and_claimed_ones_are_the_rooms() {
        let mut deleted = row("gone", WarmStatus::Retired, 0, None);
        deleted.deleted = true;
        let rows = [
            row("r", WarmStatus::Retired, 0, None),
            deleted,
            row("c", WarmStatus::Claimed, 0, None),
        ];
        check(&[target(1, None)], &rows, MINUTE, &[], &["r"], 1);
    }

    #[test]
    fn surplus_and_unanswered_starts_are_retired() {
        let rows = [
            row("1", WarmStatus::Warm, 1, None),
            row("2", WarmStatus::Warm, 2, None),
            row("3", WarmStatus::Warm, 3, None),
        ];
        check(&[target(2, None)], &rows, MINUTE, &["1"], &[], 0);
        // A pool that was removed from the settings empties.
        check(&[target(0, None)], &rows, MINUTE, &["1", "2", "3"], &[], 0);
        let stuck = [row("s", WarmStatus::Starting, 0, None)];
        check(&[target(1, None)], &stuck, START_TIMEOUT_MS, &["s"], &[], 1);
        check(
            &[target(1, None)],
            &stuck,
            START_TIMEOUT_MS - 1,
            &[],
            &[],
            0,
        );
        // Another branch than the default's is not claimable: retired.
        let mut other = row("o", WarmStatus::Warm, 0, None);
        other.branch = "dev".into();
        check(&[target(1, None)], &[other], MINUTE, &["o"], &[], 1);
    }
}
