// The rectangle the user drags over a page (injected by the service worker, in the
// extension's isolated world). Esc or a click without dragging cancels. The rectangle goes to
// the service worker, which collects the elements in the page and posts them; its answer is
// shown here as a short notice. The page cannot reach in: the shadow roots are closed, and
// events the page's scripts make up (not `isTrusted`) are ignored.
(() => {
  const OWN = 'data-session-selection';
  if (window.__sessionSelectionActive) return;
  window.__sessionSelectionActive = true;

  const STYLE = `
    :host { all: initial; }
    .veil { position: fixed; inset: 0; cursor: crosshair; background: rgba(15, 23, 42, 0.12); }
    .box { position: fixed; border: 2px dashed #2457d6; background: rgba(36, 87, 214, 0.12); display: none; pointer-events: none; }
    .hint { position: fixed; top: 12px; left: 50%; transform: translateX(-50%); font: 14px/1.4 system-ui, sans-serif;
            background: #1b1f24; color: #fff; padding: 6px 12px; border-radius: 6px; pointer-events: none; }
  `;

  const host = document.createElement('div');
  host.setAttribute(OWN, 'overlay');
  host.style.cssText = 'position:fixed;inset:0;z-index:2147483647;';
  const root = host.attachShadow({ mode: 'closed' });
  const style = document.createElement('style');
  style.textContent = STYLE;
  const veil = document.createElement('div');
  veil.className = 'veil';
  const box = document.createElement('div');
  box.className = 'box';
  const hint = document.createElement('div');
  hint.className = 'hint';
  hint.textContent = 'Drag over the area to send · Esc cancels';
  root.append(style, veil, box, hint);
  document.documentElement.append(host);

  let start = null;
  let rect = null;

  function end() {
    window.removeEventListener('keydown', onKey, true);
    host.remove();
    window.__sessionSelectionActive = false;
  }

  function onKey(ev) {
    if (!ev.isTrusted) return;
    if (ev.key === 'Escape') {
      ev.preventDefault();
      ev.stopPropagation();
      end();
      notify('Selection cancelled.', 'info');
    }
  }
  window.addEventListener('keydown', onKey, true);

  veil.addEventListener('pointerdown', (ev) => {
    if (!ev.isTrusted || ev.button !== 0) return;
    ev.preventDefault();
    veil.setPointerCapture?.(ev.pointerId);
    start = { x: ev.clientX, y: ev.clientY };
    rect = { x: start.x, y: start.y, width: 0, height: 0 };
    hint.style.display = 'none';
  });

  veil.addEventListener('pointermove', (ev) => {
    if (!ev.isTrusted || !start) return;
    rect = {
      x: Math.min(start.x, ev.clientX),
      y: Math.min(start.y, ev.clientY),
      width: Math.abs(ev.clientX - start.x),
      height: Math.abs(ev.clientY - start.y),
    };
    Object.assign(box.style, {
      display: 'block', left: `${rect.x}px`, top: `${rect.y}px`, width: `${rect.width}px`, height: `${rect.height}px`,
    });
  });

  veil.addEventListener('pointerup', async (ev) => {
    if (!ev.isTrusted || !start) return;
    const area = rect;
    start = null;
    end();
    if (!area || area.width < 4 || area.height < 4) {
      notify('Selection cancelled: drag to draw a rectangle.', 'info');
      return;
    }
    notify('Sending the selection…', 'info');
    let answer;
    try {
      answer = await chrome.runtime.sendMessage({ type: 'area-selected', rect: area });
    } catch (err) {
      answer = { ok: false, text: `The extension did not answer: ${err?.message ?? err}` };
    }
    notify(answer?.text ?? 'The extension did not answer.', answer?.ok ? 'ok' : 'error');
  });

  /** A notice in the page's corner; errors stay until closed. */
  function notify(text, kind) {
    document.querySelectorAll(`[${OWN}="toast"]`).forEach((el) => el.remove());
    const toastHost = document.createElement('div');
    toastHost.setAttribute(OWN, 'toast');
    toastHost.style.cssText = 'position:fixed;right:16px;bottom:16px;z-index:2147483647;max-width:min(420px,calc(100vw - 32px));';
    const shadow = toastHost.attachShadow({ mode: 'closed' });
    const css = document.createElement('style');
    css.textContent = `
      .toast { font: 14px/1.4 system-ui, sans-serif; padding: 10px 14px; border-radius: 8px; color: #fff;
               background: #1b1f24; box-shadow: 0 4px 16px rgba(0,0,0,.25); display: flex; gap: 10px; align-items: start; }
      .toast.ok { background: #116329; } .toast.error { background: #a40e26; }
      button { all: unset; cursor: pointer; font-weight: 700; padding: 0 4px; }
      button:focus-visible { outline: 2px solid #ffbf47; }`;
    const toast = document.createElement('div');
    toast.className = `toast ${kind}`;
    toast.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    const message = document.createElement('span');
    message.className = 'message';
    message.textContent = text;
    const close = document.createElement('button');
    close.type = 'button';
    close.textContent = '×';
    close.setAttribute('aria-label', 'Close');
    close.addEventListener('click', (ev) => ev.isTrusted && toastHost.remove());
    toast.append(message, close);
    shadow.append(css, toast);
    document.documentElement.append(toastHost);
    if (kind !== 'error') setTimeout(() => toastHost.remove(), kind === 'ok' ? 6000 : 3000);
  }
})();
