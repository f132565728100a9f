// The page's entry: signs in, then routes by the URL hash.
//   #/          my sessions, start a session, my user id
//   #/s/<id>    one session (the URL can be shared with its members)
//   #/metrics   usage and speed (users with the metrics scope)

import { ApiError, api, apiKey, setApiKey } from './api.js';
import { h } from './dom.js';
import { describeError } from './messages.js';
import { homeView } from './views/home.js';
import { metricsView } from './views/metrics.js';
import { sessionView } from './views/session.js';
import { signInView } from './views/signin.js';

const main = document.getElementById('main');
let me = null;
let teardown = null;

function show(node) {
  main.replaceChildren(node);
}

function signOut(notice) {
  setApiKey(null);
  me = null;
  route(notice);
}

async function route(notice) {
  teardown?.();
  teardown = null;
  if (!apiKey()) {
    show(signInView({ notice, onSignedIn: (user) => { me = user; route(); } }));
    return;
  }
  if (!me) {
    try {
      ({ user: me } = await api.me());
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return signOut('Your API key is no longer accepted; sign in again.');
      show(h('div', { class: 'page narrow' }, h('p', { class: 'card', role: 'alert' }, describeError(err), ' ',
        h('button', { type: 'button', onclick: () => route() }, 'Try again'))));
      return;
    }
  }
  const match = /^#\/s\/([^/?#]+)/.exec(location.hash);
  if (match) {
    teardown = sessionView(main, {
      sessionId: decodeURIComponent(match[1]),
      me,
      onSignOut: () => signOut(),
      onUnauthorized: () => signOut('Your API key is no longer accepted; sign in again.'),
    });
  } else if (/^#\/metrics\b/.test(location.hash)) {
    const view = metricsView({ me, onSignOut: () => signOut() });
    teardown = view.teardown;
    show(view.root);
  } else {
    show(homeView({ me, onSignOut: () => signOut() }));
  }
  main.focus({ preventScroll: true });
}

window.addEventListener('hashchange', () => route());
route();
