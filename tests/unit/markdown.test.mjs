// How agent answers are parsed (public/js/markdown.js with the vendored markdown-it): raw HTML
// stays text, only http(s) links become links, images are off. The DOM side is checked in
// Chromium (tests/web-agent.test.mjs).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { isWebLink, parseMarkdown } from '../../public/js/markdown.js';

/** Every token, inline children included, as [type, tag, content, attrs]. */
function flat(source) {
  const out = [];
  const walk = (tokens) => {
    for (const t of tokens) {
      out.push({ type: t.type, tag: t.tag, content: t.content, attrs: Object.fromEntries(t.attrs ?? []) });
      if (t.children) walk(t.children);
    }
  };
  walk(parseMarkdown(source));
  return out;
}
const links = (source) => flat(source).filter((t) => t.type === 'link_open').map((t) => t.attrs.href);
const text = (source) => flat(source).filter((t) => t.type === 'text').map((t) => t.content).join('');

test('only absolute http(s) URLs may become links', () => {
  for (const url of ['https://example.com/docs', 'http://localhost:8787/x?y=1#z', 'HTTPS://EXAMPLE.COM']) {
    assert.equal(isWebLink(url), true, url);
  }
  for (const url of ['javascript:alert(1)', 'JaVaScRiPt:alert(1)', 'data:text/html,x', 'vbscript:x', 'file:///etc/passwd',
    'mailto:a@b.c', '/relative', '#anchor', '//example.com/x', '', 'not a url', null, 42]) {
    assert.equal(isWebLink(url), false, String(url));
  }
});

test('links: http(s) ones are links, any other scheme stays text', () => {
  assert.deepEqual(links('[docs](https://example.com/docs)'), ['https://example.com/docs']);
  assert.deepEqual(links('[x](javascript:alert(1)) [y](data:text/html,hi) [z](/etc) <javascript:alert(1)>'), []);
  assert.match(text('[x](javascript:alert(1))'), /\[x\]\(javascript:alert\(1\)\)/, 'the refused link shows as written');
  assert.deepEqual(links('see https://example.com/a and javascript:alert(1)'), ['https://example.com/a'], 'bare http(s) URLs are linked');
  assert.deepEqual(links('<https://example.com/auto>'), ['https://example.com/auto']);
});

test('raw HTML is text, never an HTML token', () => {
  const source = '<script>window.pwned=1</script>\n\nHello <img src=x onerror="window.pwned=2"> <b>bold</b>\n\n<div>\nblock\n</div>';
  const tokens = flat(source);
  assert.deepEqual(tokens.filter((t) => t.type.startsWith('html')), []);
  assert.match(text(source), /<script>window\.pwned=1<\/script>/);
  assert.match(text(source), /<img src=x onerror="window\.pwned=2">/);
});

test('images are off: the alt text and link stay, nothing loads', () => {
  const tokens = flat('![logo](https://example.com/logo.png)');
  assert.deepEqual(tokens.filter((t) => t.type === 'image'), []);
  assert.equal(tokens.some((t) => t.tag === 'img'), false);
});

test('code blocks, inline code and tables parse as markdown-it does', () => {
  const tokens = flat('Run `npm test`:\n\n```sh\nnpm test -- --watch <file>\n```\n\n| a | b |\n|:-|-:|\n| 1 | 2 |\n');
  assert.equal(tokens.find((t) => t.type === 'code_inline').content, 'npm test');
  const fence = tokens.find((t) => t.type === 'fence');
  assert.equal(fence.content, 'npm test -- --watch <file>\n');
  assert.deepEqual(tokens.filter((t) => t.type === 'th_open').map((t) => t.attrs.style), ['text-align:left', 'text-align:right']);
});

test('the vendored bundle is the pinned version and needs no eval', () => {
  const bundle = readFileSync(new URL('../../public/vendor/markdown-it.mjs', import.meta.url), 'utf8');
  const script = readFileSync(new URL('../../scripts/vendor-markdown-it.sh', import.meta.url), 'utf8');
  const pinned = /^MARKDOWN_IT=(\S+)$/m.exec(script)[1];
  assert.ok(bundle.startsWith(`/* markdown-it ${pinned} `), 'the bundle names the pinned version');
  assert.doesNotMatch(bundle, /\beval\(|new Function\(/);
  assert.ok(readFileSync(new URL('../../public/vendor/markdown-it.LICENSE', import.meta.url), 'utf8').includes('markdown-it'));
});
