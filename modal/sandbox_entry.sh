#!/bin/sh
# sandbox-entry: prepares /workspace in a sandbox, then runs the given command (the bridge).
#
#   sandbox-entry <command…>   get the workspace ready for WORKSPACE_MODE, then exec the command
#   sandbox-entry prepare      clone (at REPO_COMMIT when set) and install dependencies (repo image
#                              builds), then exit
#
# WORKSPACE_MODE (set by the Modal app):
#   clone    fresh sandbox on the base image: an empty workspace; the bridge clones REPO_CLONE_URL
#            at REPO_BRANCH itself, through its git credential helper, so no token is needed here
#   image    prebuilt repo image: the clone is there; fetch REPO_BRANCH and check it out
#   restore  snapshot of an earlier sandbox: leave the workspace exactly as it was
#
# Image builds (`prepare`) and the fetch of `image` mode run without a bridge; a GITHUB_TOKEN in
# the environment is used there through a credential helper that reads the variable when git
# asks; the token is never written to disk, put on a command line or printed.
#
# SANDBOX_TOKEN arrives in the environment (the only way into a Modal sandbox) and leaves it
# first thing: it goes into a 0600 file in a fresh 0700 folder, SANDBOX_TOKEN_FILE names it, and
# the bridge deletes the file once read. Nothing started from here (git, the bridge, the agent)
# inherits the token, and the exec'd bridge's /proc environ does not hold it. Whatever this
# script prints has both tokens replaced by `***`.
set -eu

# Unexported: for `hide` alone, never inherited.
hidden_token="${SANDBOX_TOKEN:-}"

# The text with every copy of each secret replaced (POSIX sh: no secret on any command line).
hide() {
    text=$1
    for secret in "$hidden_token" "${GITHUB_TOKEN:-}"; do
        [ -n "$secret" ] || continue
        out=''
        while case $text in *"$secret"*) true ;; *) false ;; esac; do
            out="$out${text%%"$secret"*}***"
            text=${text#*"$secret"}
        done
        text="$out$text"
    done
    printf '%s' "$text"
}

hand_token_to_bridge() {
    [ -n "${SANDBOX_TOKEN:-}" ] || return 0
    dir=$(mktemp -d "${SANDBOX_TOKEN_DIR:-/run}/sandbox-token.XXXXXX" 2>/dev/null || mktemp -d)
    chmod 0700 "$dir"
    (umask 077 && printf '%s' "$SANDBOX_TOKEN" >"$dir/token")
    SANDBOX_TOKEN_FILE="$dir/token"
    export SANDBOX_TOKEN_FILE
    unset SANDBOX_TOKEN
}
hand_token_to_bridge

# A warm sandbox (no session yet): the bridge starts its agent and waits for the assignment the
# claim writes into this 0700 folder (session, coordinator URL, sandbox token), reads it and
# deletes it. Until then no session secret is in the sandbox.
if [ -n "${SANDBOX_ASSIGNMENT_FILE:-}" ]; then
    assignment_dir=$(dirname "$SANDBOX_ASSIGNMENT_FILE")
    (umask 077 && mkdir -p "$assignment_dir")
    chmod 0700 "$assignment_dir"
fi

WORKSPACE="${WORKSPACE:-/workspace}"
MEMORY_DIR="${MEMORY_DIR:-/memory}"
MODE="${WORKSPACE_MODE:-clone}"
export COREPACK_ENABLE_DOWNLOAD_PROMPT=0 GIT_TERMINAL_PROMPT=0

log() { printf 'sandbox-entry: %s\n' "$(hide "$*")" >&2; }

# The helper text is stored literally; `$GITHUB_TOKEN` is expanded by git's shell at use time.
HELPER='!f() { test "$1" = get || exit 0; echo username=x-access-token; echo "password=${GITHUB_TOKEN}"; }; f'

git_auth() {
    if [ -n "${GITHUB_TOKEN:-}" ]; then
        git -c credential.helper= -c "credential.helper=$HELPER" "$@"
    else
        git "$@"
    fi
}

clone_workspace() {
    : "${REPO_CLONE_URL:?REPO_CLONE_URL is not set}" "${REPO_BRANCH:?REPO_BRANCH is not set}"
    log "cloning ${REPO_OWNER:-?}/${REPO_NAME:-?} at $REPO_BRANCH"
    mkdir -p "$(dirname "$WORKSPACE")"
    git_auth clone --quiet --filter=blob:none --branch "$REPO_BRANCH" "$REPO_CLONE_URL" "$WORKSPACE"
    if [ -n "${GITHUB_TOKEN:-}" ]; then
        # Later fetches (and lazy blob fetches) by the agent use the same env-reading helper.
        git -C "$WORKSPACE" config credential.helper "$HELPER"
    fi
}

update_workspace() {
    log "updating the prebuilt workspace to $REPO_BRANCH"
    before=$(git -C "$WORKSPACE" rev-parse HEAD 2>/dev/null || echo none)
    if git_auth -C "$WORKSPACE" fetch --quiet origin "+refs/heads/$REPO_BRANCH:refs/remotes/origin/$REPO_BRANCH" \
        && git -C "$WORKSPACE" checkout --quiet -B "$REPO_BRANCH" "refs/remotes/origin/$REPO_BRANCH"; then
        after=$(git -C "$WORKSPACE" rev-parse HEAD)
        if [ "$before" != "$after" ] && ! git -C "$WORKSPACE" diff --quiet "$before" "$after" -- \
            package.json package-lock.json pnpm-lock.yaml yarn.lock requirements.txt 2>/dev/null; then
            install_dependencies || log "dependency install failed; continuing"
        fi
    else
        log "could not fetch $REPO_BRANCH; keeping the image's checkout"
    fi
}

install_dependencies() {
    cd "$WORKSPACE"
    if [ -f pnpm-lock.yaml ]; then
        corepack enable >/dev/null 2>&1 || npm install -g pnpm
        pnpm install --frozen-lockfile
    elif [ -f yarn.lock ]; then
        corepack enable >/dev/null 2>&1 || true
        yarn install --immutable || yarn install --frozen-lockfile
    elif [ -f package-lock.json ] || [ -f npm-shrinkwrap.json ]; then
        npm ci --no-audit --no-fund
    elif [ -f bun.lock ] || [ -f bun.lockb ]; then
        log "bun lockfile found but bun is not installed; skipping"
    elif [ -f package.json ]; then
        npm install --no-audit --no-fund
    fi
    if [ -f requirements.txt ] && command -v python3 >/dev/null 2>&1; then
        python3 -m venv /opt/workspace-venv && /opt/workspace-venv/bin/pip install --quiet -r requirements.txt
    fi
    cd - >/dev/null
}

# An empty workspace for the bridge to clone into.
leave_clone_to_bridge() {
    log "the bridge clones ${REPO_OWNER:-?}/${REPO_NAME:-?} at ${REPO_BRANCH:-its default branch}"
    mkdir -p "$WORKSPACE"
}

case "$MODE" in
    prepare) ;;
    restore)
        [ -d "$WORKSPACE/.git" ] || { log "no workspace in the snapshot"; leave_clone_to_bridge; }
        ;;
    image)
        if [ -d "$WORKSPACE/.git" ]; then update_workspace; else leave_clone_to_bridge; fi
        ;;
    clone)
        [ -d "$WORKSPACE/.git" ] || leave_clone_to_bridge
        ;;
    *)
        log "unknown WORKSPACE_MODE $MODE"
        exit 2
        ;;
esac

# An image of the commit the coordinator found at the branch's head (REPO_COMMIT), which the
# clone of the branch holds unless the branch moved since; then it is fetched by its id.
check_out_commit() {
    [ -n "${REPO_COMMIT:-}" ] || return 0
    log "checking out $REPO_COMMIT"
    git -C "$WORKSPACE" cat-file -e "$REPO_COMMIT^{commit}" 2>/dev/null \
        || git_auth -C "$WORKSPACE" fetch --quiet --filter=blob:none origin "$REPO_COMMIT"
    git -C "$WORKSPACE" checkout --quiet -B "$REPO_BRANCH" "$REPO_COMMIT"
}

if [ "${1:-}" = prepare ]; then
    [ -d "$WORKSPACE/.git" ] || clone_workspace
    check_out_commit
    install_dependencies
    exit 0
fi

mkdir -p "$MEMORY_DIR" 2>/dev/null || true

# The agent's user (AGENT_USER, `agent` in the image): the bridge stays root and runs the agent's
# processes as that user, so the workspace and HOME become that user's (a
# restored snapshot's already are); the bridge's own folder (BRIDGE_STATE_DIR) stays root's, 0711.
give_workspace_to_agent() {
    [ -n "${AGENT_USER:-}" ] || return 0
    if [ "$(id -u)" != 0 ] || ! id -u "$AGENT_USER" >/dev/null 2>&1; then
        log "not root, or no user $AGENT_USER: the agent runs as the bridge's user"
        unset AGENT_USER
        return 0
    fi
    if [ "$MODE" != restore ] || [ "$(stat -c %U "$WORKSPACE")" != "$AGENT_USER" ]; then
        chown -R -h -P "$AGENT_USER:" "$WORKSPACE"
    fi
    # The repository's memory Volume stays root's and unlistable: the bridge makes the session
    # owner's folder in it and gives that one folder to the agent, so no agent finds another's.
    chown -h root: "$MEMORY_DIR" 2>/dev/null || true
    chmod 0711 "$MEMORY_DIR" 2>/dev/null || true
    HOME=$(getent passwd "$AGENT_USER" | cut -d: -f6)
    export HOME
    BRIDGE_STATE_DIR="${BRIDGE_STATE_DIR:-/var/lib/bridge}"
    mkdir -p "$BRIDGE_STATE_DIR"
    chmod 0711 "$BRIDGE_STATE_DIR"
    export BRIDGE_STATE_DIR
}
[ "${1:-}" = prepare ] || give_workspace_to_agent

[ "$#" -gt 0 ] || { log "no command given"; exit 2; }
cd "$WORKSPACE"
exec "$@"
