// Signing in, without the DOM: what the page's URL fragment says after a refused sign-in with
// GitHub (`#/signin?error=<code>&reason=<sentence>`, PROTOCOL.md section 1), and where the
// "Sign in with GitHub" link goes, so the coordinator sends the browser back to the view it
// left (`return_to`, a fragment path the coordinator accepts, else `/`).

const REASON_MAX = 400;

/** The refusal a `#/signin?…` fragment carries → {error, reason} or null. */
export function signInRefusal(hash) {
  const match = /^#\/signin(?:\?(.*))?$/.exec(String(hash ?? ''));
  if (!match) return null;
  const params = new URLSearchParams(match[1] ?? '');
  const error = params.get('error');
  if (!error) return null;
  const reason = (params.get('reason') ?? '').replace(/\s+/g, ' ').trim().slice(0, REASON_MAX);
  return { error: /^[a-z_]{1,40}$/.test(error) ? error : 'unknown', reason };
}

/** The fragment path to come back to (the coordinator allows `/` and `[A-Za-z0-9/_.?=&-]`). */
export function returnTo(hash) {
  const path = String(hash ?? '').replace(/^#/, '');
  if (!path.startsWith('/') || path.startsWith('//') || path.startsWith('/signin')) return '/';
  if (path.length > 200 || !/^[A-Za-z0-9/_.?=&-]*$/.test(path)) return '/';
  return path;
}

/** The link that starts sign-in with GitHub from the view at `hash`. */
export function githubLoginUrl(hash) {
  return `/v1/auth/github/login?return_to=${encodeURIComponent(returnTo(hash))}`;
}
