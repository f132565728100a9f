//! The web page has a sentence for every code of the protocol's tables: a code added to
//! `ErrorCode`, `CloseCode` or `SessionErrorCode` without a key in `public/js/messages.js` fails
//! here, before anyone sees `Error (some_code)` on the page.

use protocol::event::SessionErrorCode;
use protocol::{CloseCode, ErrorCode};

/// The keys of the object literal `const <table> = { … };` in messages.js, one per line.
fn keys_of(source: &str, table: &str) -> Vec<String> {
    let start = source
        .find(&format!("const {table} = {{"))
        .unwrap_or_else(|| panic!("messages.js has no table {table}"));
    source[start..]
        .lines()
        .skip(1)
        .take_while(|line| !line.starts_with("};"))
        .filter_map(|line| {
            let (key, _) = line.trim().split_once(':')?;
            Some(key.trim_matches(|c| c == '\'' || c == '"').to_owned())
        })
        .collect()
}

fn check(table: &str, codes: impl IntoIterator<Item = String>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../public/js/messages.js");
    let source = std::fs::read_to_string(path).expect("public/js/messages.js");
    let keys = keys_of(&source, table);
    let missing: Vec<String> = codes.into_iter().filter(|c| !keys.contains(c)).collect();
    assert!(
        missing.is_empty(),
        "public/js/messages.js {table} has no sentence for {missing:?}"
    );
}

#[test]
fn every_error_code_has_a_sentence() {
    check(
        "ERROR_TEXT",
        ErrorCode::ALL.iter().map(|c| c.as_str().to_owned()),
    );
}

#[test]
fn every_close_code_has_a_sentence() {
    check(
        "CLOSE_TEXT",
        CloseCode::ALL.iter().map(|c| c.code().to_string()),
    );
}

#[test]
fn every_session_error_code_has_a_sentence() {
    check(
        "SESSION_ERROR_TEXT",
        SessionErrorCode::ALL.iter().map(|c| c.as_str().to_owned()),
    );
}
