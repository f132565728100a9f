// Sign in with a user API key; the key is checked with GET /v1/me and kept in localStorage.

import { ApiError, api, setApiKey } from '../api.js';
import { h } from '../dom.js';
import { describeError } from '../messages.js';

export function signInView({ onSignedIn, notice }) {
  const input = h('input', {
    id: 'api-key', name: 'api-key', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true, 'aria-describedby': 'api-key-help',
  });
  const status = h('p', { class: 'form-status', role: 'alert' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'card signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    notice ? h('p', { class: 'notice' }, notice) : null,
    h('label', { for: 'api-key' }, 'Your API key'),
    input,
    h('p', { id: 'api-key-help', class: 'muted' },
      'The key you were given when your user was created (', h('code', {}, 'npm run dev'),
      ' prints the dev user’s). It stays in this browser and is sent only to this coordinator.'),
    button,
    status);
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
