// The page's entry: signs in, then routes by the URL hash.
//   #/          my sessions, start a session, my user id
//   #/s/<id>    one session (the URL can be shared with its members)
//   #/metrics   usage and speed (users with the metrics scope)
//   #/signin    the sign-in view (with ?error=&reason= after a refused sign-in with GitHub)
// Signed in means GET /v1/me answers: with the API key this page keeps, or, without one, with
// the coordinator's session cookie after signing in with GitHub.

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

/** Forgets the key and clears the session cookie (the page cannot read it, only ask). */
async function signOut(notice) {
  setApiKey(null);
  me = null;
  try {
    await api.logout();
  } catch {
    // Offline: the cookie, if any, is refused once it expires; the key is gone already.
  }
  route(notice);
}

function signedIn(user) {
  me = user;
  // Back from a refused sign-in: its sentence is no longer news.
  if (location.hash.startsWith('#/signin')) location.hash = '#/'; // routes on hashchange
  else route();
}

async function route(notice) {
  teardown?.();
  teardown = null;
  if (!me) {
    try {
      ({ user: me } = await api.me());
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        const hadKey = !!apiKey();
        setApiKey(null);
        show(signInView({ notice: notice ?? (hadKey ? 'Your API key is no longer accepted; sign in again.' : null), onSignedIn: signedIn }));
        return;
      }
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
      onUnauthorized: () => signOut('You are no longer signed in (your API key or sign-in is not accepted); sign in again.'),
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
