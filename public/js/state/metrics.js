// The metrics page's pure state: the query a window makes, the series and bars drawn from
// an answer of GET /v1/metrics, axis scales and SVG paths, and how figures read. No DOM here,
// so all of it is unit tested without a browser (tests/unit/metrics.test.mjs).

const DAY_MS = 86_400_000;

/** The query string for the last `days` days up to `now` (a Date or ms), and a repository. */
export function metricsQuery({ days = 30, repo = '', now = Date.now() } = {}) {
  const to = new Date(typeof now === 'number' ? now : now.getTime());
  const from = new Date(to.getTime() - (days - 1) * DAY_MS);
  const day = (d) => d.toISOString().slice(0, 10);
  const params = new URLSearchParams({ from: day(from), to: day(to) });
  if (repo) params.set('repo', repo);
  return params.toString();
}

/** Daily series from an answer: one entry per day, zeros kept, nulls where nothing was measured. */
export function dailySeries(answer) {
  const days = answer?.days ?? [];
  return {
    labels: days.map((d) => d.day),
    sessions: days.map((d) => d.sessions ?? 0),
    prompts: days.map((d) => d.prompts ?? 0),
    mergedPrs: days.map((d) => d.prs_merged ?? 0),
    firstTokenP50: days.map((d) => d.time_to_first_token_ms?.all?.p50 ?? null),
    firstTokenP95: days.map((d) => d.time_to_first_token_ms?.all?.p95 ?? null),
  };
}

/** Per-repository bars of one figure (`prompts`, `sessions`, `prs_merged`…), largest first. */
export function repoBars(answer, figure = 'prompts') {
  const repos = (answer?.repos ?? []).map((r) => ({ repo: r.repo, value: r[figure] ?? 0 }));
  repos.sort((a, b) => b.value - a.value || a.repo.localeCompare(b.repo));
  const max = Math.max(0, ...repos.map((r) => r.value));
  return repos.map((r) => ({ ...r, fraction: max ? r.value / max : 0 }));
}

/** A round top for an axis at or above `max` (1, 2 or 5 times a power of ten). */
export function niceMax(max) {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 5, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

/**
 * An SVG path through `values` across a `width` × `height` box with `top` as the axis top;
 * a null value breaks the line (nothing was measured that day).
 */
export function linePath(values, { width, height, top }) {
  const n = values.length;
  if (!n) return '';
  const x = (i) => (n === 1 ? width / 2 : (i * width) / (n - 1));
  const y = (v) => height - (Math.min(v, top) / top) * height;
  let path = '';
  let pen = false;
  values.forEach((v, i) => {
    if (v === null || v === undefined || Number.isNaN(v)) {
      pen = false;
      return;
    }
    path += `${pen ? 'L' : 'M'}${round(x(i))} ${round(y(v))}`;
    pen = true;
  });
  return path;
}

/** The points of `values` in the same box as `linePath` (nulls have none), for dots. */
export function points(values, { width, height, top }) {
  const n = values.length;
  return values.flatMap((v, i) => (v === null || v === undefined || Number.isNaN(v)
    ? []
    : [{ x: round(n === 1 ? width / 2 : (i * width) / (n - 1)), y: round(height - (Math.min(v, top) / top) * height) }]));
}

/** The first and last day of an answer's window, as the page shows it (`to` is exclusive). */
export function windowLabel(answer) {
  const days = answer?.days ?? [];
  return days.length ? `${days[0].day} to ${days.at(-1).day} (UTC)` : '';
}

const round = (v) => Math.round(v * 10) / 10;

/** A duration in ms as people read it: 850 ms, 1.2 s, 3.5 min, 2.1 h; an em dash for nothing. */
export function formatMs(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${trim(ms / 1000)} s`;
  if (ms < 3_600_000) return `${trim(ms / 60_000)} min`;
  if (ms < 2 * DAY_MS) return `${trim(ms / 3_600_000)} h`;
  return `${trim(ms / DAY_MS)} d`;
}

const trim = (v) => (v >= 10 ? String(Math.round(v)) : v.toFixed(1).replace(/\.0$/, ''));

/** A share (0…1) as a percentage, or an em dash when there is nothing to share. */
export function formatShare(share) {
  if (share === null || share === undefined) return '—';
  return `${Math.round(share * 100)}%`;
}

/** The headline figures of the totals, in the order the page shows them. */
export function headline(answer) {
  const t = answer?.totals ?? {};
  const ttft = t.time_to_first_token_ms?.all ?? {};
  const started = t.time_to_prompt_started_ms?.all ?? {};
  return [
    { label: 'Sessions', value: String(t.sessions ?? 0) },
    { label: 'Prompts', value: String(t.prompts ?? 0) },
    { label: 'People prompting', value: String(t.unique_users ?? 0) },
    { label: 'Multiplayer sessions', value: formatShare(t.multiplayer_share) },
    { label: 'First token p50 / p95', value: `${formatMs(ttft.p50)} / ${formatMs(ttft.p95)}` },
    { label: 'Started p50 / p95', value: `${formatMs(started.p50)} / ${formatMs(started.p95)}` },
    { label: 'Pull requests merged', value: `${t.prs_merged ?? 0} of ${t.prs_created ?? 0} opened` },
    { label: 'Merge rate', value: formatShare(t.merge_rate) },
    { label: 'Time to merge p50', value: formatMs(t.time_to_merge_ms?.p50) },
  ];
}
