// Sign in: with GitHub when the coordinator offers it (GET /v1/auth/methods), which leaves the
// page to GitHub's authorize page and comes back signed in by an HttpOnly cookie; and with a
// user API key (as under `npm run dev`), checked with GET /v1/me and kept in localStorage.
// A refused sign-in with GitHub comes back as `#/signin?error=&reason=`, said here as a sentence.

import { ApiError, api, setApiKey } from '../api.js';
import { h } from '../dom.js';
import { describeError, describeSignInRefusal } from '../messages.js';
import { githubLoginUrl, signInRefusal } from '../state/signin.js';

export function signInView({ onSignedIn, notice }) {
  const refusal = signInRefusal(location.hash);
  const input = h('input', {
    id: 'api-key', name: 'api-key', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true, 'aria-describedby': 'api-key-help',
  });
  const status = h('p', { class: 'form-status', role: 'alert' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  // Shown only once the coordinator says it offers GitHub.
  const githubLink = h('a', { class: 'button primary github', href: githubLoginUrl(location.hash) }, 'Sign in with GitHub');
  // Where to come back to is read when it is clicked: the URL may have changed since.
  githubLink.addEventListener('click', () => (githubLink.href = githubLoginUrl(location.hash)));
  const github = h('div', { class: 'github-signin', hidden: true },
    githubLink,
    h('p', { class: 'or muted' }, 'or with an API key'));
  const form = h('form', { class: 'card signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    notice ? h('p', { class: 'notice' }, notice) : null,
    refusal ? h('p', { class: 'notice refusal', role: 'alert' }, describeSignInRefusal(refusal)) : null,
    github,
    h('label', { for: 'api-key' }, 'Your API key'),
    input,
    h('p', { id: 'api-key-help', class: 'muted' },
      'The key you were given when your user was created (', h('code', {}, 'npm run dev'),
      ' prints the dev user’s). It stays in this browser and is sent only to this coordinator.'),
    button,
    status);
  api.authMethods().then((methods) => {
    github.hidden = methods?.github !== true;
  }).catch(() => {
    // Without an answer the key form is still there.
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    button.disabled = true;
    status.textContent = 'Checking…';
    try {
      setApiKey(key);
      const { user } = await api.me();
      input.value = '';
      status.textContent = '';
      onSignedIn(user);
    } catch (err) {
      setApiKey(null);
      status.textContent = err instanceof ApiError && err.status === 401
        ? 'That key was not accepted.'
        : describeError(err);
    } finally {
      button.disabled = false;
    }
  });
  queueMicrotask(() => input.focus());
  return h('div', { class: 'page narrow' }, form);
}
