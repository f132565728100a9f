// Medians and spreads over runs.

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** {median, min, max, runs} of the finite values (NaN stands for a run that had none). */
export function spread(values) {
  const v = values.filter((x) => Number.isFinite(x));
  return {
    median: median(v),
    min: v.length ? Math.min(...v) : NaN,
    max: v.length ? Math.max(...v) : NaN,
    runs: values,
  };
}

/** Picks `path` (a.b.c) from each item and summarises. */
export function spreadOf(items, pick) {
  return spread(items.map((item) => {
    const value = pick(item);
    return typeof value === 'number' ? value : NaN;
  }));
}
