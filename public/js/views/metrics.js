// #/metrics: who uses the coordinator and how fast it answers, from GET /v1/metrics (admin
// key or a user with the metrics scope). Charts are hand-drawn SVG built node by node from
// numbers; nothing from the network is parsed as markup. "Humans prompting now" refreshes
// every 30 s while the page is open.

import { api } from '../api.js';
import { h } from '../dom.js';
import { describeError } from '../messages.js';
import { dailySeries, formatMs, headline, linePath, metricsQuery, niceMax, points, repoBars, windowLabel } from '../state/metrics.js';
import { topBar } from './chrome.js';

const SVG = 'http://www.w3.org/2000/svg';
const REFRESH_MS = 30_000;
const CHART = { width: 520, height: 160, left: 44, bottom: 22, top: 10, right: 10 };

/** An SVG element; attribute values are numbers or our own strings, children are nodes or text. */
function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) if (value !== undefined && value !== null) el.setAttribute(name, String(value));
  for (const child of children.flat()) if (child !== null && child !== undefined) el.append(child);
  return el;
}

/** A line chart of daily series: `lines` are {label, values, cls}; `format` labels the axis;
 * `dots` marks every measured day (a day between unmeasured ones has no line to show it). */
function lineChart({ title, labels, lines, format = String, dots: withDots = false }) {
  const w = CHART.width - CHART.left - CHART.right;
  const ht = CHART.height - CHART.top - CHART.bottom;
  const max = Math.max(0, ...lines.flatMap((l) => l.values.filter((v) => v !== null)));
  const top = niceMax(max);
  const grid = [0, 0.5, 1].map((f) => {
    const y = CHART.top + ht - f * ht;
    return svg('g', { class: 'grid' },
      svg('line', { x1: CHART.left, x2: CHART.left + w, y1: y, y2: y }),
      svg('text', { x: CHART.left - 6, y: y + 4, 'text-anchor': 'end' }, format(top * f)));
  });
  const ends = labels.length ? [labels[0], labels.at(-1)] : [];
  const xLabels = ends.map((label, i) => svg('text', {
    x: i === 0 ? CHART.left : CHART.left + w, y: CHART.height - 6, 'text-anchor': i === 0 ? 'start' : 'end', class: 'axis',
  }, label.slice(5)));
  const paths = lines.map((line) => svg('path', {
    d: linePath(line.values, { width: w, height: ht, top }), class: `series ${line.cls}`,
    transform: `translate(${CHART.left} ${CHART.top})`,
  }));
  const box = { width: w, height: ht, top };
  const dots = lines.flatMap((line) => (withDots || line.values.length === 1 ? points(line.values, box) : [])
    .map((p) => svg('circle', { cx: CHART.left + p.x, cy: CHART.top + p.y, r: 3, class: `dot ${line.cls}` })));
  return h('figure', { class: 'chart card' },
    h('figcaption', {}, h('h2', {}, title),
      h('span', { class: 'legend' }, lines.map((l) => h('span', { class: `key ${l.cls}` }, l.label)))),
    svg('svg', { viewBox: `0 0 ${CHART.width} ${CHART.height}`, role: 'img', 'aria-label': title }, grid, xLabels, paths, dots));
}

const count = (n, noun) => `${n} ${noun}${n === 1 ? '' : 's'}`;

/** Horizontal bars per repository. */
function repoChart(answer) {
  const bars = repoBars(answer, 'prompts');
  const byRepo = new Map((answer.repos ?? []).map((r) => [r.repo, r]));
  const rows = bars.map((bar) => {
    const r = byRepo.get(bar.repo) ?? {};
    const fill = h('span', { class: 'bar' });
    // Through the CSSOM: the page's CSP allows no style attributes.
    fill.style.width = `${Math.max(1, Math.round(bar.fraction * 100))}%`;
    return h('li', { class: 'bar-row' },
      h('span', { class: 'bar-name' }, bar.repo),
      h('span', { class: 'bar-track' }, fill),
      h('span', { class: 'bar-value' }, `${count(bar.value, 'prompt')} · ${count(r.sessions ?? 0, 'session')} · ${r.prs_merged ?? 0} merged`));
  });
  return h('section', { class: 'card repos' },
    h('h2', {}, 'Per repository'),
    rows.length ? h('ol', { class: 'bars' }, rows) : h('p', { class: 'muted' }, 'No prompts in this window.'));
}

export function metricsView({ me, onSignOut }) {
  let days = 30;
  let repo = '';
  let timer = null;
  let stopped = false;
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading metrics…');
  const now = h('strong', { id: 'humans-now' }, '…');
  const body = h('div', { class: 'metrics-body' });
  const repoSelect = h('select', { 'aria-label': 'Repository', onchange: () => { repo = repoSelect.value; load(); } },
    h('option', { value: '' }, 'All repositories'));
  const daysSelect = h('select', { 'aria-label': 'Window', onchange: () => { days = Number(daysSelect.value); load(); } },
    [7, 30, 90].map((d) => h('option', { value: d, selected: d === days }, `Last ${d} days`)));

  function render(answer) {
    now.textContent = String(answer.humans_prompting_now ?? 0);
    const known = new Set([...repoSelect.options].map((o) => o.value));
    for (const r of answer.repos ?? []) if (!known.has(r.repo)) repoSelect.append(h('option', { value: r.repo }, r.repo));
    const series = dailySeries(answer);
    body.replaceChildren(
      h('dl', { class: 'figures' }, headline(answer).map((f) => h('div', { class: 'figure card' }, h('dt', {}, f.label), h('dd', {}, f.value)))),
      h('div', { class: 'charts' },
        lineChart({
          title: 'Sessions, prompts and merged pull requests per day',
          labels: series.labels,
          lines: [
            { label: 'Prompts', values: series.prompts, cls: 's1' },
            { label: 'Sessions', values: series.sessions, cls: 's2' },
            { label: 'Merged PRs', values: series.mergedPrs, cls: 's3' },
          ],
        }),
        lineChart({
          title: 'Time to first token per day',
          labels: series.labels,
          format: formatMs,
          dots: true,
          lines: [
            { label: 'p50', values: series.firstTokenP50, cls: 's1' },
            { label: 'p95', values: series.firstTokenP95, cls: 's4' },
          ],
        }),
        repoChart(answer)));
  }

  async function load() {
    clearTimeout(timer);
    try {
      const answer = await api.metrics(metricsQuery({ days, repo }));
      status.textContent = `${windowLabel(answer)}, as of ${new Date(answer.generated_at).toLocaleTimeString()}`;
      render(answer);
    } catch (err) {
      status.textContent = describeError(err);
    }
    if (!stopped) timer = setTimeout(load, REFRESH_MS);
  }

  const root = h('div', { class: 'page metrics' },
    topBar({ me, onSignOut, children: [h('a', { href: '#/metrics', 'aria-current': 'page' }, 'Metrics')] }),
    h('div', { class: 'metrics-main' },
      h('div', { class: 'metrics-head' },
        h('h1', {}, 'Metrics'),
        h('p', { class: 'now card', 'aria-live': 'polite' }, now, ' ', h('span', {}, 'humans prompting now'), h('span', { class: 'muted' }, ' (a prompt in the last 5 minutes)')),
        h('span', { class: 'spacer' }), daysSelect, repoSelect),
      status, body));
  load();
  return { root, teardown: () => { stopped = true; clearTimeout(timer); } };
}
