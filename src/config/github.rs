//! The GitHub settings, all optional: the App (installation tokens), sign-in (the App's user
//! authorization), webhooks, the key that encrypts users' tokens, every base URL, who may sign
//! in, and the session branch. With none of them set the coordinator works as it did without
//! GitHub. Pure parsing, tested natively.

pub use super::git_host::GitHost;
use super::git_host::{base_url, git_host};
use crate::crypto::{decode_base64, pkcs8_from_pem};
use protocol::api::Repo;
use protocol::git::{is_branch_name, DEFAULT_BRANCH_PREFIX};
use protocol::scope::Scopes;
use std::fmt;

/// A secret value: shown as `…` by `Debug`, so a logged configuration never carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[derive(Clone, Debug)]
pub struct GithubConfig {
    /// REST API base, without a trailing slash (`GITHUB_API_URL`).
    pub api_url: String,
    /// Web base for OAuth and links (`GITHUB_WEB_URL`).
    pub web_url: String,
    pub git: GitHost,
    pub app: Option<AppSettings>,
    /// Sign-in needs the client id and secret and a token encryption key.
    pub sign_in: Option<SignIn>,
    pub webhook_secret: Option<Secret>,
    /// The first encrypts; all decrypt (`TOKEN_ENCRYPTION_KEY`).
    pub token_keys: Vec<TokenKey>,
    pub admission: Admission,
    pub default_scopes: Scopes,
    pub branch_prefix: String,
    pub pr_as_app_fallback: bool,
}

#[derive(Clone, Debug)]
pub struct AppSettings {
    pub app_id: String,
    /// The private key as PKCS#8 DER, whatever form it was given in.
    pub private_key: Secret8,
}

/// PKCS#8 DER bytes of the App's private key, never shown by `Debug`.
#[derive(Clone)]
pub struct Secret8(pub Vec<u8>);

impl fmt::Debug for Secret8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret8(…)")
    }
}

#[derive(Clone, Debug)]
pub struct SignIn {
    pub client_id: String,
    pub client_secret: Secret,
}

#[derive(Clone)]
pub struct TokenKey {
    pub id: String,
    pub key: [u8; 32],
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKey({}, …)", self.id)
    }
}

/// Who may sign in with GitHub; nobody when all three are empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    /// Logins, lower case.
    pub users: Vec<String>,
    pub orgs: Vec<String>,
    /// Email domains, lower case, without `@`.
    pub email_domains: Vec<String>,
}

impl Admission {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.orgs.is_empty() && self.email_domains.is_empty()
    }
}

/// `TOKEN_ENCRYPTION_KEY`: `<key>` or `<id>:<key>,<id>:<key>…`, each key 32 bytes in hex or
/// base64; a key without an id is `k1`.
fn token_keys(value: &str) -> Result<Vec<TokenKey>, String> {
    let mut keys: Vec<TokenKey> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, text) = entry.split_once(':').unwrap_or(("k1", entry));
        let good_id = !id.is_empty()
            && id.len() <= 16
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !good_id {
            return Err("TOKEN_ENCRYPTION_KEY: a key id is 1 to 16 letters, digits, - or _".into());
        }
        let bytes = match protocol::crypto::unhex(text) {
            Some(bytes) if text.len() == 64 => bytes,
            _ => decode_base64(text).unwrap_or_default(),
        };
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            format!("TOKEN_ENCRYPTION_KEY: key {id} must be 32 bytes, in hex or base64")
        })?;
        if keys.iter().any(|k| k.id == id) {
            return Err(format!("TOKEN_ENCRYPTION_KEY: key id {id} appears twice"));
        }
        keys.push(TokenKey {
            id: id.to_owned(),
            key,
        });
    }
    Ok(keys)
}

fn list(value: Option<String>, strip: char) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(|item| item.trim().trim_start_matches(strip).to_ascii_lowercase())
                .filter(|item| !item.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

impl GithubConfig {
    /// The GitHub settings, or `None` when none of the App, sign-in, webhook or git host
    /// settings is given. `non_empty` reads a var or secret, trimmed.
    pub fn from_lookup(
        non_empty: &dyn Fn(&str) -> Option<String>,
        development: bool,
    ) -> Result<Option<GithubConfig>, String> {
        let app_id = non_empty("GITHUB_APP_ID");
        let private_key = non_empty("GITHUB_APP_PRIVATE_KEY");
        let client_id = non_empty("GITHUB_CLIENT_ID");
        let client_secret = non_empty("GITHUB_CLIENT_SECRET");
        let webhook_secret = non_empty("GITHUB_WEBHOOK_SECRET").map(Secret);
        let git_host_value = non_empty("GIT_HOST");
        if app_id.is_none()
            && private_key.is_none()
            && client_id.is_none()
            && webhook_secret.is_none()
            && git_host_value.is_none()
        {
            return Ok(None);
        }
        let app = match (app_id, private_key) {
            (Some(app_id), Some(pem)) => {
                if !app_id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err("GITHUB_APP_ID must be the App's numeric id".into());
                }
                let der =
                    pkcs8_from_pem(&pem).map_err(|why| format!("GITHUB_APP_PRIVATE_KEY {why}"))?;
                Some(AppSettings {
                    app_id,
                    private_key: Secret8(der),
                })
            }
            (None, None) => None,
            _ => return Err("GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY are set together".into()),
        };
        let token_keys = match non_empty("TOKEN_ENCRYPTION_KEY") {
            Some(value) => token_keys(&value)?,
            None => Vec::new(),
        };
        let sign_in = match (client_id, client_secret) {
            (Some(client_id), Some(secret)) if !token_keys.is_empty() => Some(SignIn {
                client_id,
                client_secret: Secret(secret),
            }),
            (Some(_), Some(_)) => {
                return Err("sign-in with GitHub needs TOKEN_ENCRYPTION_KEY to store tokens".into())
            }
            (None, None) => None,
            _ => return Err("GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET are set together".into()),
        };
        let url = |name: &str, default: &str| -> Result<String, String> {
            let value = non_empty(name).unwrap_or_else(|| default.to_owned());
            let (scheme, rest) = base_url(name, &value, development)?;
            Ok(format!("{scheme}://{rest}"))
        };
        let api_url = url("GITHUB_API_URL", "https://api.github.com")?;
        let web_url = url("GITHUB_WEB_URL", "https://github.com")?;
        let git = git_host(git_host_value.as_deref(), &web_url, development)?;
        let default_scopes = match non_empty("DEFAULT_SCOPES") {
            Some(json) => {
                let scopes: Scopes = serde_json::from_str(&json)
                    .map_err(|e| format!("DEFAULT_SCOPES is not {{\"repos\": […]}}: {e}"))?;
                scopes
                    .validate()
                    .map_err(|e| format!("DEFAULT_SCOPES: {e}"))?;
                scopes
            }
            None => Scopes::default(),
        };
        let branch_prefix = non_empty("BRANCH_PREFIX")
            .map(|p| p.trim_matches('/').to_owned())
            .unwrap_or_else(|| DEFAULT_BRANCH_PREFIX.to_owned());
        if !is_branch_name(&format!("{branch_prefix}/x")) {
            return Err(format!(
                "BRANCH_PREFIX {branch_prefix:?} does not make a valid branch name"
            ));
        }
        let pr_as_app_fallback = match non_empty("PR_AS_APP_FALLBACK").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err("PR_AS_APP_FALLBACK must be true or false".into()),
        };
        Ok(Some(GithubConfig {
            api_url,
            web_url,
            git,
            app,
            sign_in,
            webhook_secret,
            token_keys,
            admission: Admission {
                users: list(non_empty("ALLOWED_GITHUB_USERS"), '@'),
                orgs: list(non_empty("ALLOWED_GITHUB_ORGS"), '@'),
                email_domains: list(non_empty("ALLOWED_EMAIL_DOMAINS"), '@'),
            },
            default_scopes,
            branch_prefix,
            pr_as_app_fallback,
        }))
    }

    /// Whether a sandbox can be given git credentials: an installation token from the App,
    /// or a token of the local git host.
    pub fn can_give_credentials(&self) -> bool {
        self.app.is_some() || self.git.is_local()
    }

    /// Where a sandbox clones `repo` from: its `clone_url` in REPOS, else the git host's.
    pub fn clone_url(&self, repo: &str, configured: Option<&Repo>) -> String {
        configured
            .and_then(|r| r.clone_url.clone())
            .unwrap_or_else(|| self.git.clone_url(repo))
    }

    /// The branch's page on GitHub, when the git host is GitHub's.
    pub fn branch_url(&self, repo: &str, branch: &str) -> Option<String> {
        let web_host = self.web_url.split_once("://").map(|p| p.1);
        (self.app.is_some() && web_host == Some(self.git.host.as_str()))
            .then(|| format!("{}/{repo}/tree/{branch}", self.web_url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const PKCS1: &str = include_str!("../../tests/fixtures/test-key-pkcs1.txt");
    const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn github(vars: &[(&str, &str)], development: bool) -> Result<Option<GithubConfig>, String> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        GithubConfig::from_lookup(
            &|name| vars.get(name).map(|v| v.trim().to_owned()),
            development,
        )
    }

    fn pem() -> String {
        format!("-----BEGIN RSA PRIVATE KEY-----\n{PKCS1}-----END RSA PRIVATE KEY-----")
    }

    #[test]
    fn nothing_set_is_none() {
        assert!(github(&[], true).unwrap().is_none());
        assert!(github(&[("ALLOWED_GITHUB_USERS", "ada")], true)
            .unwrap()
            .is_none());
    }

    #[test]
    fn app_and_defaults() {
        let pem = pem();
        let c = github(
            &[("GITHUB_APP_ID", "123"), ("GITHUB_APP_PRIVATE_KEY", &pem)],
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.api_url, "https://api.github.com");
        assert_eq!(c.git.base_url(), "https://github.com");
        assert_eq!(
            c.git.clone_url("acme/web"),
            "https://github.com/acme/web.git"
        );
        assert_eq!(c.branch_prefix, "agent");
        assert!(c.can_give_credentials() && c.sign_in.is_none());
        assert_eq!(
            c.branch_url("acme/web", "agent/ses_1").as_deref(),
            Some("https://github.com/acme/web/tree/agent/ses_1")
        );
        assert!(!format!("{c:?}").contains(PKCS1.lines().next().unwrap()));
        for bad in [
            vec![("GITHUB_APP_ID", "123")],
            vec![
                ("GITHUB_APP_ID", "abc"),
                ("GITHUB_APP_PRIVATE_KEY", pem.as_str()),
            ],
            vec![("GITHUB_APP_ID", "1"), ("GITHUB_APP_PRIVATE_KEY", "nope")],
        ] {
            assert!(github(&bad, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sign_in_needs_a_key() {
        let base = [("GITHUB_CLIENT_ID", "Iv1.x"), ("GITHUB_CLIENT_SECRET", "s")];
        assert!(github(&base, false)
            .unwrap_err()
            .contains("TOKEN_ENCRYPTION_KEY"));
        let with_key = [base[0], base[1], ("TOKEN_ENCRYPTION_KEY", KEY_HEX)];
        let c = github(&with_key, false).unwrap().unwrap();
        assert!(c.sign_in.is_some() && !c.can_give_credentials());
        assert_eq!(c.token_keys[0].id, "k1");
        assert!(!format!("{c:?}").contains("\"s\""));
        assert!(github(&[base[0]], false).is_err());
    }

    #[test]
    fn token_key_lists() {
        let b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let keys = token_keys(&format!("new:{b64}, old:{KEY_HEX}")).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!((keys[0].id.as_str(), keys[1].id.as_str()), ("new", "old"));
        assert_eq!(keys[0].key, keys[1].key);
        assert_eq!(
            token_keys(b64.trim_end_matches('=')).unwrap()[0].key[31],
            31
        );
        for bad in [
            "abcd",
            "a:b:c",
            &format!("x:{KEY_HEX},x:{KEY_HEX}"),
            &format!("bad id:{KEY_HEX}"),
        ] {
            assert!(token_keys(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn git_hosts_and_urls() {
        let local = [("GIT_HOST", "http://127.0.0.1:8790/git/")];
        let c = github(&local, true).unwrap().unwrap();
        assert_eq!(c.git.base_url(), "http://127.0.0.1:8790/git");
        assert!(c.git.is_local() && c.can_give_credentials());
        assert_eq!(c.branch_url("acme/demo", "agent/x"), None);
        assert!(
            github(&local, false).is_err(),
            "plain http only in development"
        );
        assert!(github(&[("GIT_HOST", "http://example.com")], true).is_err());
        let c = github(&[("GIT_HOST", "GHE.example.com")], false)
            .unwrap()
            .unwrap();
        assert_eq!(c.git.base_url(), "https://ghe.example.com");
        assert!(github(&[("GIT_HOST", "a b")], false).is_err());
        let fake = [
            ("GIT_HOST", "x.example"),
            ("GITHUB_API_URL", "http://127.0.0.1:9000/api/"),
            ("GITHUB_WEB_URL", "http://localhost:9000"),
        ];
        let c = github(&fake, true).unwrap().unwrap();
        assert_eq!(c.api_url, "http://127.0.0.1:9000/api");
        assert_eq!(c.web_url, "http://localhost:9000");
        assert!(github(&fake, false).is_err());
    }

    #[test]
    fn admission_scopes_and_branches() {
        let c = github(
            &[
                ("GIT_HOST", "github.com"),
                ("ALLOWED_GITHUB_USERS", "Ada, @grace"),
                ("ALLOWED_EMAIL_DOMAINS", "@Example.com"),
                ("DEFAULT_SCOPES", r#"{"repos":["acme/*"]}"#),
                ("BRANCH_PREFIX", "/bots/"),
                ("PR_AS_APP_FALLBACK", "true"),
            ],
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.admission.users, ["ada", "grace"]);
        assert_eq!(c.admission.email_domains, ["example.com"]);
        assert!(c.admission.orgs.is_empty() && !c.admission.is_empty());
        assert!(c.default_scopes.allows_repo("acme/web"));
        assert_eq!(c.branch_prefix, "bots");
        assert!(c.pr_as_app_fallback);
        let host = [("GIT_HOST", "github.com")];
        for (name, value) in [
            ("DEFAULT_SCOPES", r#"{"repos":["nope"]}"#),
            ("BRANCH_PREFIX", "a..b"),
            ("PR_AS_APP_FALLBACK", "yes"),
        ] {
            assert!(github(&[host[0], (name, value)], false).is_err(), "{name}");
        }
    }
}
