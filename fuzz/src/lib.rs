//! The checks behind the fuzz targets: every decoder of outside input, with what must hold for
//! any input (see README.md).
//!
//! Each target in `fuzz_targets/` hands libFuzzer's bytes to one function here. The function
//! runs the decoder and asserts no panic and the decoder's own invariants: what parses
//! re-serialises to something that parses the same, a refusal carries the protocol's error code
//! for it, and what a signed value accepts is what was signed. A failed assertion is a crash,
//! which libFuzzer saves as the input that caused it.
//!
//! Layout:
//! - [`frames`]: participant frames and bridge frames (WebSocket).
//! - [`bodies`]: HTTP bodies: the API's, prompts, DOM selections, the provider contract's.
//! - [`http`]: query strings, the Worker's routes, the room's routes, session-list cursors.
//! - [`signed`]: provider signatures, participant tokens, local git tokens.
//! - [`branch`]: branch names against git's rules and the provider contract's pattern.

mod bodies;
mod branch;
mod frames;
mod http;
mod input;
mod signed;

pub use bodies::{http_body, prompt_body, selection};
pub use branch::branch_name;
pub use frames::{bridge_frame, client_frame};
pub use http::{cursor, query, route};
pub use signed::{git_token, participant_token, signature};

/// Every target by name, for the replay test and the runner's listing.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("client_frame", client_frame),
    ("bridge_frame", bridge_frame),
    ("http_body", http_body),
    ("prompt_body", prompt_body),
    ("selection", selection),
    ("query", query),
    ("route", route),
    ("signature", signature),
    ("participant_token", participant_token),
    ("git_token", git_token),
    ("branch_name", branch_name),
    ("cursor", cursor),
];

#[cfg(test)]
mod tests {
    /// Every committed corpus file runs through its target's checks without libFuzzer:
    /// `cargo test --manifest-path fuzz/Cargo.toml`.
    #[test]
    fn the_corpus_passes_every_check() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for (name, check) in super::TARGETS {
            let dir = root.join(name);
            let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
            let mut n = 0;
            for entry in entries.flatten() {
                let data = std::fs::read(entry.path()).expect("a corpus file reads");
                check(&data);
                n += 1;
            }
            assert!(n > 0, "{name} has no seeds in {dir:?}");
        }
    }
}
