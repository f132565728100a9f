// Agent answers as Markdown. markdown-it (vendored by scripts/vendor-markdown-it.sh) parses with
// raw HTML off, and its tokens become DOM nodes here one by one: no HTML string is ever parsed,
// so an answer can only become the elements listed below, holding text. Links go only to
// http(s), in a new tab without opener or referrer; images are off (they would load from
// anywhere, and the page's CSP refuses them anyway); table alignment becomes a class, since
// the CSP also refuses inline styles. A single line break stays a line break (as in chat and
// GitHub comments): agents often answer line by line.

import MarkdownIt from '../vendor/markdown-it.mjs';

/** Whether a link target may become a link: absolute http(s) URLs only. */
export function isWebLink(url) {
  if (typeof url !== 'string') return false;
  try {
    const { protocol } = new URL(url.trim());
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false; // relative, or not a URL
  }
}

const md = new MarkdownIt({ html: false, linkify: true, typographer: false, breaks: true });
md.validateLink = isWebLink;
md.disable('image');

/** markdown-it's tokens for `source` (what renderMarkdown turns into nodes). */
export function parseMarkdown(source) {
  return md.parse(String(source ?? ''), {});
}

// The tags markdown-it's core rules make, and the attributes kept on them; anything else
// becomes a <span> without attributes.
const TAGS = new Set([
  'p', 'h3', 'h4', 'h5', 'h6', 'blockquote', 'ul', 'ol', 'li', 'hr', 'br', 'pre', 'code',
  'table', 'thead', 'tbody', 'tr', 'th', 'td', 'a', 'em', 'strong', 's',
]);
const ATTRS = { a: ['href', 'title'], ol: ['start'] };
// Answers sit under the page's own headings: # becomes <h3>, and so on down.
const HEADINGS = { h1: 'h3', h2: 'h4', h3: 'h5', h4: 'h6', h5: 'h6', h6: 'h6' };

function element(doc, token) {
  const name = HEADINGS[token.tag] ?? token.tag;
  const tag = TAGS.has(name) ? name : 'span';
  const el = doc.createElement(tag);
  for (const [attr, value] of token.attrs ?? []) {
    if (attr === 'style') {
      const align = /^text-align:(left|right|center)$/.exec(value);
      if (align) el.className = `align-${align[1]}`;
    } else if (ATTRS[tag]?.includes(attr) && (attr !== 'href' || isWebLink(value))) {
      el.setAttribute(attr, value);
    }
  }
  if (tag === 'a') {
    el.target = '_blank';
    el.rel = 'noopener noreferrer';
  }
  return el;
}

function code(doc, token) {
  const pre = doc.createElement('pre');
  const inner = pre.appendChild(doc.createElement('code'));
  const language = /^[\w+-]{1,30}/.exec(token.info?.trim() ?? '');
  if (language) inner.className = `language-${language[0]}`;
  inner.textContent = token.content;
  return pre;
}

/** Appends the nodes of `tokens` (a block or inline token list) to `parent`. */
function build(doc, tokens, parent) {
  const open = [parent];
  for (const token of tokens) {
    const here = open.at(-1);
    if (token.type === 'inline') {
      build(doc, token.children ?? [], here);
    } else if (token.nesting === 1) {
      // Paragraphs in tight lists are hidden: their text goes straight into the item.
      open.push(token.hidden ? here : here.appendChild(element(doc, token)));
    } else if (token.nesting === -1) {
      if (open.length > 1) open.pop();
    } else if (token.type === 'code_inline') {
      here.appendChild(doc.createElement('code')).textContent = token.content;
    } else if (token.type === 'fence' || token.type === 'code_block') {
      here.appendChild(code(doc, token));
    } else if (token.type === 'softbreak' || token.type === 'hardbreak') {
      here.appendChild(doc.createElement('br'));
    } else if (token.type === 'hr') {
      here.appendChild(doc.createElement('hr'));
    } else if (token.content) {
      // Text, and anything else that has some (raw HTML cannot occur with html off; if it did,
      // it would be text too).
      here.append(token.content);
    }
  }
}

/** `source` rendered as Markdown, as a fragment of DOM nodes holding only text and safe links. */
export function renderMarkdown(source, doc = document) {
  const fragment = doc.createDocumentFragment();
  build(doc, parseMarkdown(source), fragment);
  return fragment;
}
