// The metrics page's pure state (public/js/state/metrics.js): the query, the series and bars
// drawn from an answer, axis tops, SVG paths and how figures read.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dailySeries, formatMs, formatShare, headline, linePath, metricsQuery, niceMax, points, repoBars, windowLabel } from '../../public/js/state/metrics.js';

const answer = {
  totals: {
    sessions: 4, prompts: 9, unique_users: 3, multiplayer_share: 0.25, prs_created: 2, prs_merged: 1, merge_rate: 0.5,
    time_to_first_token_ms: { all: { n: 9, p50: 850, p95: 4200 } },
    time_to_prompt_started_ms: { all: { n: 9, p50: 120, p95: 90_000 } },
    time_to_merge_ms: { n: 1, p50: 3_600_000, p95: 3_600_000 },
  },
  repos: [
    { repo: 'acme/web', prompts: 3, sessions: 1 },
    { repo: 'acme/demo', prompts: 6, sessions: 3 },
    { repo: 'acme/api', prompts: 3, sessions: 0 },
  ],
  days: [
    { day: '2026-12-01', sessions: 1, prompts: 2, prs_merged: 0, time_to_first_token_ms: { all: { n: 2, p50: 500, p95: 900 } } },
    { day: '2026-12-02', sessions: 0, prompts: 0, prs_merged: 0, time_to_first_token_ms: { all: { n: 0, p50: null, p95: null } } },
    { day: '2026-12-03', sessions: 3, prompts: 7, prs_merged: 1, time_to_first_token_ms: { all: { n: 7, p50: 800, p95: 4200 } } },
  ],
};

test('the query covers whole days up to today, with a repository when one is picked', () => {
  const now = Date.parse('2026-12-02T15:00:00Z');
  assert.equal(metricsQuery({ days: 7, now }), 'from=2026-11-26&to=2026-12-02');
  assert.equal(metricsQuery({ days: 1, repo: 'acme/web', now }), 'from=2026-12-02&to=2026-12-02&repo=acme%2Fweb');
});

test('daily series keep empty days as zeros and unmeasured latencies as gaps', () => {
  const series = dailySeries(answer);
  assert.deepEqual(series.labels, ['2026-12-01', '2026-12-02', '2026-12-03']);
  assert.deepEqual(series.prompts, [2, 0, 7]);
  assert.deepEqual(series.mergedPrs, [0, 0, 1]);
  assert.deepEqual(series.firstTokenP50, [500, null, 800]);
  assert.deepEqual(dailySeries(null).labels, []);
});

test('repository bars run largest first, ties by name, as fractions of the largest', () => {
  assert.deepEqual(repoBars(answer), [
    { repo: 'acme/demo', value: 6, fraction: 1 },
    { repo: 'acme/api', value: 3, fraction: 0.5 },
    { repo: 'acme/web', value: 3, fraction: 0.5 },
  ]);
  assert.deepEqual(repoBars(answer, 'sessions').map((b) => b.fraction), [1, 1 / 3, 0]);
  assert.deepEqual(repoBars({ repos: [] }), []);
});

test('axis tops are round; paths break where nothing was measured', () => {
  assert.deepEqual([0, 0.3, 1, 7, 10, 11, 240, 999].map(niceMax), [1, 0.5, 1, 10, 10, 20, 500, 1000]);
  assert.equal(linePath([0, 5, 10], { width: 100, height: 50, top: 10 }), 'M0 50L50 25L100 0');
  assert.equal(linePath([2, null, 4, 6], { width: 30, height: 10, top: 10 }), 'M0 8M20 6L30 4');
  assert.equal(linePath([3], { width: 100, height: 10, top: 10 }), 'M50 7');
  assert.equal(linePath([], { width: 100, height: 10, top: 10 }), '');
  assert.equal(linePath([20], { width: 10, height: 10, top: 10 }), 'M5 0', 'clipped at the top');
  assert.deepEqual(points([2, null, 4, 6], { width: 30, height: 10, top: 10 }), [{ x: 0, y: 8 }, { x: 20, y: 6 }, { x: 30, y: 4 }]);
  assert.equal(windowLabel(answer), '2026-12-01 to 2026-12-03 (UTC)');
  assert.equal(windowLabel({}), '');
});

test('figures read as people say them', () => {
  assert.deepEqual([null, 0, 850, 1_250, 59_000, 210_000, 7_560_000, 3 * 86_400_000].map(formatMs),
    ['—', '0 ms', '850 ms', '1.3 s', '59 s', '3.5 min', '2.1 h', '3 d']);
  assert.deepEqual([null, 0, 0.254, 1].map(formatShare), ['—', '0%', '25%', '100%']);
  const shown = Object.fromEntries(headline(answer).map((f) => [f.label, f.value]));
  assert.equal(shown['First token p50 / p95'], '850 ms / 4.2 s');
  assert.equal(shown['Started p50 / p95'], '120 ms / 1.5 min');
  assert.equal(shown['Pull requests merged'], '1 of 2 opened');
  assert.equal(shown['Time to merge p50'], '1 h');
  assert.equal(shown['Multiplayer sessions'], '25%');
});
