// Pieces shared by the views: the top bar and a copy button.

import { h } from '../dom.js';

export function topBar({ me, onSignOut, children = [] }) {
  return h('header', { class: 'topbar' },
    h('a', { href: '#/', class: 'brand' }, 'Sessions'),
    me?.scopes?.metrics && !children.length ? h('a', { href: '#/metrics' }, 'Metrics') : null,
    ...children,
    h('span', { class: 'spacer' }),
    me ? h('span', { class: 'whoami muted' }, me.name) : null,
    onSignOut ? h('button', { type: 'button', class: 'link', onclick: onSignOut }, 'Sign out') : null);
}

export function copyButton(value, label = 'Copy') {
  const button = h('button', { type: 'button', class: 'small' }, label);
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(value);
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Select and copy it';
    }
    setTimeout(() => (button.textContent = label), 2000);
  });
  return button;
}
