// Which elements lie inside a rectangle of the page, described for a coding agent:
// tag, classes, id, text (cut to 100 characters), rect, React component and a CSS selector.
//
// A classic script with no imports, so the same file is injected by the extension (into the
// page's main world, where React's fiber properties are visible) and by the tests into a
// plain page. It defines `globalThis.SessionSelection`.
(() => {
  const MAX_ELEMENTS = 2000;
  const TEXT_CHARS = 100;
  // An element counts when at least this share of its area is inside the rectangle.
  const MOSTLY = 0.5;
  const SKIP = new Set(['script', 'style', 'link', 'meta', 'head', 'title', 'base', 'noscript', 'template', 'br', 'wbr']);
  // The extension's own overlay and toasts carry this attribute.
  const OWN = 'data-session-selection';

  /** The first `n` characters (code points) of a text. */
  function cut(text, n) {
    if (text.length <= n) return text;
    return Array.from(text.slice(0, n * 2)).slice(0, n).join('');
  }

  /** Visible words of an element, whitespace collapsed. Form fields never give their value. */
  function elementText(el) {
    let text;
    if (el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement || el instanceof HTMLSelectElement) {
      text = el.getAttribute('aria-label') || el.getAttribute('placeholder') || '';
    } else {
      text = el.textContent || '';
    }
    return cut(text.replace(/\s+/g, ' ').trim(), TEXT_CHARS);
  }

  function fiberOf(el) {
    for (const key of Object.keys(el)) {
      if (key.startsWith('__reactFiber$') || key.startsWith('__reactInternalInstance$')) return el[key];
    }
    return null;
  }

  /** The name of a component type: functions and classes, and memo / forwardRef wrappers. */
  function typeName(type, depth = 0) {
    if (!type || depth > 3) return null;
    if (typeof type === 'function') return type.displayName || type.name || null;
    if (typeof type === 'object') {
      return (typeof type.displayName === 'string' && type.displayName) ||
        typeName(type.render, depth + 1) || typeName(type.type, depth + 1) || null;
    }
    return null; // a host element ('div') or text
  }

  /** The nearest React function or class component above a DOM node, by its fiber. */
  function reactComponentName(el) {
    try {
      let fiber = fiberOf(el);
      for (let i = 0; fiber && i < 200; i++, fiber = fiber.return) {
        const name = typeName(fiber.type);
        if (name) return String(name);
      }
    } catch {
      // a page can put anything on its nodes
    }
    return null;
  }

  function uniqueId(id, cache) {
    if (!id) return false;
    if (!cache.has(id)) {
      let unique = false;
      try {
        unique = document.querySelectorAll(`#${CSS.escape(id)}`).length === 1;
      } catch {
        unique = false;
      }
      cache.set(id, unique);
    }
    return cache.get(id);
  }

  /** `tag` or `tag:nth-of-type(n)`; sibling positions are counted once per parent. */
  function step(el, positions) {
    const tag = el.localName;
    const parent = el.parentElement;
    if (!parent) return tag;
    let known = positions.get(parent);
    if (!known) {
      known = new Map();
      const counts = new Map();
      for (const sibling of parent.children) {
        const n = (counts.get(sibling.localName) ?? 0) + 1;
        counts.set(sibling.localName, n);
        known.set(sibling, n);
      }
      known.counts = counts;
      positions.set(parent, known);
    }
    return known.counts.get(tag) > 1 ? `${tag}:nth-of-type(${known.get(el)})` : tag;
  }

  function selectsOnly(selector, el) {
    try {
      const found = document.querySelectorAll(selector);
      return found.length === 1 && found[0] === el;
    } catch {
      return false;
    }
  }

  /** `#id` when the id is unique, else the shortest `a > b:nth-of-type(2)` path that is. */
  function cssSelector(el, cache = new Map(), positions = new Map()) {
    if (uniqueId(el.id, cache)) return `#${CSS.escape(el.id)}`;
    const parts = [];
    for (let node = el; node && node.nodeType === Node.ELEMENT_NODE; node = node.parentElement) {
      if (node !== el && uniqueId(node.id, cache)) {
        parts.unshift(`#${CSS.escape(node.id)}`);
        break;
      }
      parts.unshift(step(node, positions));
      if (node.localName === 'body' || node.localName === 'html') break;
      if (parts.length > 1 || node.parentElement?.localName === 'body') {
        const candidate = parts.join(' > ');
        if (selectsOnly(candidate, el)) return candidate;
      }
    }
    return parts.join(' > ');
  }

  function visible(el) {
    const style = getComputedStyle(el);
    return style.display !== 'none' && style.visibility !== 'hidden' && style.visibility !== 'collapse';
  }

  /**
   * Elements fully or mostly inside `rect` (viewport coordinates, like getBoundingClientRect),
   * in document order, at most `max` → {elements, total} (`total` counts those past the cap).
   */
  function collectElements(rect, { max = MAX_ELEMENTS } = {}) {
    const left = rect.x;
    const top = rect.y;
    const right = rect.x + rect.width;
    const bottom = rect.y + rect.height;
    const elements = [];
    const ids = new Map();
    const positions = new Map();
    let total = 0;
    const all = document.body ? document.body.getElementsByTagName('*') : [];
    for (const el of all) {
      if (SKIP.has(el.localName) || el.hasAttribute(OWN)) continue;
      const r = el.getBoundingClientRect();
      if (r.width <= 0 || r.height <= 0) continue;
      const overlapX = Math.min(r.right, right) - Math.max(r.left, left);
      const overlapY = Math.min(r.bottom, bottom) - Math.max(r.top, top);
      if (overlapX <= 0 || overlapY <= 0) continue;
      if (overlapX * overlapY < MOSTLY * r.width * r.height) continue;
      if (!visible(el)) continue;
      total += 1;
      if (elements.length >= max) continue;
      const item = {
        tag: el.localName,
        classes: [...el.classList].slice(0, 50),
        rect: { x: Math.round(r.left), y: Math.round(r.top), width: Math.round(r.width), height: Math.round(r.height) },
        selector: cssSelector(el, ids, positions),
      };
      if (el.id) item.id = el.id;
      const text = elementText(el);
      if (text) item.text = text;
      const component = reactComponentName(el);
      if (component) item.react_component = component;
      elements.push(item);
    }
    return { elements, total };
  }

  /** The body of POST /v1/sessions/:id/selections (without the note), plus `total`. */
  function collectSelection(rect, options) {
    const { elements, total } = collectElements(rect, options);
    return {
      url: location.href,
      title: document.title,
      viewport: { width: window.innerWidth, height: window.innerHeight },
      elements,
      total,
    };
  }

  globalThis.SessionSelection = Object.freeze({
    MAX_ELEMENTS,
    TEXT_CHARS,
    collectElements,
    collectSelection,
    cssSelector: (el) => cssSelector(el),
    reactComponentName,
    elementText,
  });
})();
