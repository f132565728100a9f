// Building DOM nodes without HTML strings: everything that came from the network is set as
// text (textContent, attribute values), never parsed as markup.

/**
 * h('div', {class: 'x', onclick: fn, dataset: {seq: 1}}, 'text', child, [more, children])
 * Strings and numbers become text nodes; null, undefined and false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name === 'text') el.textContent = value;
    else if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name in el && typeof value !== 'string') el[name] = value; // booleans and numbers as properties (hidden, disabled, open…)
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/** Appends children (nested arrays allowed) as nodes or text. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Removes every child of an element. */
export function clear(el) {
  el.replaceChildren();
  return el;
}

/** A link only for http(s) URLs; anything else is shown as plain text. */
export function safeLink(url, label) {
  let parsed = null;
  try {
    parsed = new URL(String(url));
  } catch {
    parsed = null;
  }
  if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
    return h('span', { class: 'url' }, label ?? String(url ?? ''));
  }
  return h('a', { href: parsed.href, target: '_blank', rel: 'noopener noreferrer', class: 'url' }, label ?? parsed.href);
}

/** A <time> element showing the local time of an RFC 3339 timestamp. */
export function timeEl(ts) {
  const date = ts ? new Date(ts) : null;
  if (!date || Number.isNaN(date.getTime())) return null;
  const today = new Date().toDateString() === date.toDateString();
  const label = today
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  return h('time', { datetime: date.toISOString(), title: date.toLocaleString() }, label);
}

/** A short, single-line preview of a text. */
export function preview(text, max = 80) {
  const flat = String(text ?? '').replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
