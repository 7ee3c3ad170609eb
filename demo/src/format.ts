/**
 * Formatting helpers of the demo page: durations, times, rates and task labels.
 *
 * @module
 */

/** A duration for people: `850 ms`, `1.2 s`, `2 min 5 s`; `—` for a missing one. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return seconds === 0 ? `${minutes} min` : `${minutes} min ${seconds} s`;
}

/** A wall-clock time `HH:MM:SS.mmm` (local time) for the event log. */
export function formatClock(at: number): string {
  const d = new Date(at);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${
    String(d.getMilliseconds()).padStart(3, "0")
  }`;
}

/** A rate with one decimal: `2.5 tasks/s`. */
export function formatRate(perSecond: number, unit = "tasks/s"): string {
  const value = Number.isFinite(perSecond) && perSecond > 0 ? perSecond : 0;
  return `${value.toFixed(value >= 100 ? 0 : 1)} ${unit}`;
}

/** A fraction as a whole percentage: `0.456` → `46%`. */
export function formatPercent(fraction: number): string {
  const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  return `${Math.round(f * 100)}%`;
}

/** The last segment of a spawned task's key: `plan/fetch-3` → `fetch-3`. */
export function shortKey(key: string): string {
  const i = key.lastIndexOf("/");
  return i >= 0 ? key.slice(i + 1) : key;
}

/** Cut `text` to `max` characters, ending with `…` when it was longer. */
export function truncate(text: string, max: number): string {
  if (max <= 0) return "";
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/** The first characters of an id, for display. */
export function shortId(id: string, length = 8): string {
  return id.length <= length ? id : `${id.slice(0, length)}…`;
}
