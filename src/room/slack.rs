//! The room's side of Slack: a prompt from a thread is queued with source `slack`, and the
//! room reports back to the thread from its alarm, never on the hot path of a frame. Each
//! prompt gets one status message, posted when queued and then updated in place (queued →
//! sandbox starting → working: the tool → done or failed) at most once every 3 s, and one
//! final reply with the answer, the files, the branch or pull request and the buttons.
//! Every post has a key kept with Slack's `ts` once Slack answered; a post tried before whose
//! answer was lost is looked for in the thread before it is sent again, so nothing is posted
//! twice. A 429 waits Slack's `Retry-After`; other failures back off, then give up.

use super::api::{Caller, SlackPrompt};
use super::context::Ctx;
use super::members;
use super::prompts;
use super::queue::MessageStatus;
use super::ratelimit::RateLimits;
use super::store::{SlackPost, SlackPromptRow};
use crate::config::SlackConfig;
use crate::error::Result;
use crate::slack::blocks::{self, FinalReply, Progress};
use crate::slack::client::{self, Post, SlackError};
use crate::time::now_ms;
use protocol::event::{SandboxState, Source};
use protocol::frames::PromptInput;
use std::cell::RefCell;
use std::collections::HashSet;

/// A status message changes at most this often.
const STATUS_EVERY_MS: u64 = 3000;
/// A prompt still going is looked at this often, and less often the longer its status has
/// not changed (a long tool, or a prompt waiting with no sandbox provider).
const POLL_MS: u64 = 3000;

fn poll_ms(unchanged_for_ms: u64) -> u64 {
    match unchanged_for_ms {
        0..=60_000 => POLL_MS,
        60_001..=600_000 => 10_000,
        _ => 60_000,
    }
}
/// After this many failures in a row (429s aside) a prompt's posts are given up.
const GIVE_UP_AFTER: u64 = 8;

thread_local! {
    /// Prompts whose posts are being sent now, so an alarm that fires meanwhile leaves them.
    static IN_FLIGHT: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// Queues a prompt from Slack; its status message goes out at the next alarm.
pub fn submit(
    cx: &Ctx,
    rates: &RefCell<RateLimits>,
    caller: &Caller,
    prompt: SlackPrompt,
) -> Result<String> {
    let participant = members::ensure_participant(cx, caller)?;
    let mut input = PromptInput::from_content(prompt.content, cx.limits())?;
    input.attachments = prompt
        .attachments
        .into_iter()
        .filter(|a| a.is_object())
        .take(cx.limits().attachments)
        .collect();
    // Only this path sets it: clients cannot claim a prompt came from Slack.
    input.source = Some(Source::Slack);
    let (message_id, _) = prompts::submit(cx, rates, &participant, input, Source::Slack)?;
    cx.store.insert_slack_prompt(&SlackPromptRow {
        message_id: message_id.clone(),
        team_id: prompt.team_id,
        channel_id: prompt.channel_id,
        thread_ts: prompt.thread_ts,
        session_url: prompt.session_url,
        offer_pr: i64::from(prompt.offer_pull_request),
        status_ts: None,
        status_text: None,
        status_at: None,
        status_tried: 0,
        final_ts: None,
        final_tried: 0,
        attempts: 0,
        next_at: cx.now,
    })?;
    Ok(message_id)
}

/// When the alarm must fire for Slack next, if anything is left to post.
pub fn next_at(cx: &Ctx) -> Result<Option<u64>> {
    match cx.config.slack {
        Some(_) => cx.store.slack_next_at(),
        None => Ok(None),
    }
}

/// What to do with a prompt after a look.
enum Next {
    At(u64),
    Done,
}

/// The alarm fired: every Slack prompt that is due is reported on.
pub async fn work(cx: &Ctx<'_>) -> Result<()> {
    let Some(slack) = &cx.config.slack else {
        return Ok(());
    };
    for row in cx.store.slack_due(now_ms())? {
        if !IN_FLIGHT.with_borrow_mut(|set| set.insert(row.message_id.clone())) {
            continue;
        }
        let outcome = report(cx, slack, &row).await;
        IN_FLIGHT.with_borrow_mut(|set| set.remove(&row.message_id));
        let now = now_ms();
        let attempts = row.attempts + 1;
        let (next_at, attempts, done) = match outcome {
            Ok(Ok(Next::Done)) => (now, 0, true),
            Ok(Ok(Next::At(at))) => (at, 0, false),
            Ok(Err(SlackError::RateLimited(secs))) => (now + secs * 1000, attempts, false),
            Ok(Err(error)) => {
                crate::log::error(&format!(
                    "slack: reporting {} failed ({attempts}): {}",
                    row.message_id,
                    error.describe()
                ));
                (
                    now + backoff_ms(attempts),
                    attempts,
                    attempts >= GIVE_UP_AFTER,
                )
            }
            Err(error) => {
                crate::log::error(&format!("slack: reporting {}: {error:?}", row.message_id));
                (
                    now + backoff_ms(attempts),
                    attempts,
                    attempts >= GIVE_UP_AFTER,
                )
            }
        };
        cx.store
            .slack_next(&row.message_id, next_at, attempts, done)?;
    }
    Ok(())
}

/// 2 s, 4 s, 8 s … at most a minute.
fn backoff_ms(attempts: u64) -> u64 {
    (1000u64 << attempts.min(6)).min(60_000)
}

/// Where the prompt is now.
fn progress(cx: &Ctx, message_id: &str) -> Result<(Progress, Option<String>)> {
    let Some(message) = cx.store.message(message_id)? else {
        return Ok((Progress::Failed("the prompt is gone".into()), None));
    };
    let progress = match message.status() {
        MessageStatus::Queued => match cx.store.live_sandbox()?.map(|s| s.state()) {
            Some(SandboxState::Spawning) => Progress::SandboxStarting,
            _ => Progress::Queued,
        },
        MessageStatus::Running => Progress::Working(cx.store.running_tool(message_id)?),
        MessageStatus::Completed => Progress::Done,
        MessageStatus::Failed => {
            Progress::Failed(message.error.clone().unwrap_or_else(|| "failed".into()))
        }
        MessageStatus::Cancelled => Progress::Cancelled,
        MessageStatus::TimedOut => Progress::TimedOut,
    };
    Ok((progress, message.error))
}

/// Posts or updates what is due for one prompt. The outer error is the room's own.
async fn report(
    cx: &Ctx<'_>,
    slack: &SlackConfig,
    row: &SlackPromptRow,
) -> Result<Result<Next, SlackError>> {
    let (progress, error) = progress(cx, &row.message_id)?;
    let text = progress.text();
    let mut shown = row.status_text.clone();
    let mut shown_at = row.status_at.unwrap_or(0);
    let now = now_ms();
    match &row.status_ts {
        None => {
            let (fallback, blocks) = blocks::notice(&text);
            if let Err(e) = post_once(cx, slack, row, SlackPost::Status, &fallback, &blocks).await?
            {
                return Ok(Err(e));
            }
            cx.store.slack_status_shown(&row.message_id, &text, now)?;
            (shown, shown_at) = (Some(text.clone()), now);
        }
        Some(ts)
            if shown.as_deref() != Some(text.as_str()) && now >= shown_at + STATUS_EVERY_MS =>
        {
            let (fallback, blocks) = blocks::notice(&text);
            if let Err(e) = client::update(slack, &row.channel_id, ts, &fallback, &blocks).await {
                return Ok(Err(e));
            }
            cx.store.slack_status_shown(&row.message_id, &text, now)?;
            (shown, shown_at) = (Some(text.clone()), now);
        }
        Some(_) => {}
    }
    let mut final_posted = row.final_ts.is_some();
    if progress.is_final() && !final_posted {
        let answer = cx.store.answer_text(&row.message_id)?;
        let files = cx.store.edited_paths_of(&row.message_id)?;
        let branch = cx
            .store
            .latest_artifact("branch")?
            .map(|a| a.data())
            .and_then(|d| {
                let name = d["name"].as_str()?.to_owned();
                Some((name, d["url"].as_str().map(str::to_owned)))
            });
        let pull_request = cx
            .store
            .latest_artifact("pr")?
            .map(|a| a.data())
            .and_then(|d| Some((d["number"].as_u64()?, d["url"].as_str()?.to_owned())));
        let session = cx.store.existing_session()?;
        let reply = FinalReply {
            session_id: &session.id,
            session_url: &row.session_url,
            answer: &answer,
            failure: match progress {
                Progress::Done => None,
                _ => Some(error.unwrap_or_else(|| text.clone())),
            },
            files: &files,
            branch,
            pull_request,
            offer_pull_request: row.offer_pr != 0,
        };
        let (fallback, blocks) = blocks::final_reply(&reply);
        if let Err(e) = post_once(cx, slack, row, SlackPost::Final, &fallback, &blocks).await? {
            return Ok(Err(e));
        }
        final_posted = true;
    }
    let status_current = shown.as_deref() == Some(text.as_str());
    Ok(Ok(
        match (progress.is_final() && final_posted, status_current) {
            (true, true) => Next::Done,
            (_, false) => Next::At(shown_at + STATUS_EVERY_MS),
            (false, true) => {
                let now = now_ms();
                Next::At(now + poll_ms(now.saturating_sub(shown_at)))
            }
        },
    ))
}

/// Posts one of a prompt's messages unless Slack already has it: a post tried before is
/// looked for by its key first.
async fn post_once(
    cx: &Ctx<'_>,
    slack: &SlackConfig,
    row: &SlackPromptRow,
    post: SlackPost,
    text: &str,
    blocks: &serde_json::Value,
) -> Result<Result<String, SlackError>> {
    let key = post.key(&row.message_id);
    let tried = match post {
        SlackPost::Status => row.status_tried,
        SlackPost::Final => row.final_tried,
    } != 0;
    if tried {
        match client::find_post(slack, &row.channel_id, &row.thread_ts, &key).await {
            Ok(Some(ts)) => {
                cx.store.slack_posted(&row.message_id, post, &ts)?;
                return Ok(Ok(ts));
            }
            Ok(None) => {}
            Err(error) => return Ok(Err(error)),
        }
    }
    cx.store.slack_tried(&row.message_id, post, true)?;
    let message = Post {
        channel: &row.channel_id,
        thread_ts: &row.thread_ts,
        text,
        blocks,
        key: Some(&key),
    };
    match client::post_message(slack, &message).await {
        Ok(ts) => {
            cx.store.slack_posted(&row.message_id, post, &ts)?;
            Ok(Ok(ts))
        }
        Err(error) => {
            // Slack did nothing with a request it refused outright: no need to look for it.
            if matches!(error, SlackError::RateLimited(_) | SlackError::Refused(_)) {
                cx.store.slack_tried(&row.message_id, post, false)?;
            }
            Ok(Err(error))
        }
    }
}
