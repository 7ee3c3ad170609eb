import { describe, expect, test } from "vitest";
import {
  formatClock,
  formatDuration,
  formatPercent,
  formatRate,
  shortId,
  shortKey,
  truncate,
} from "../../demo/src/format.ts";
import { sparklineBars, ThroughputMeter } from "../../demo/src/throughput.ts";

describe("demo formatting", () => {
  test("formatDuration() picks a unit people read at a glance", () => {
    expect(formatDuration(0)).toBe("0 ms");
    expect(formatDuration(849.6)).toBe("850 ms");
    expect(formatDuration(1234)).toBe("1.2 s");
    expect(formatDuration(42_000)).toBe("42 s");
    expect(formatDuration(120_000)).toBe("2 min");
    expect(formatDuration(125_000)).toBe("2 min 5 s");
  });

  test("formatDuration() shows a dash for a missing or impossible duration", () => {
    for (const v of [null, undefined, -1, Number.NaN, Infinity]) expect(formatDuration(v)).toBe("—");
  });

  test("formatClock() is HH:MM:SS.mmm in local time", () => {
    const at = new Date(2024, 0, 2, 3, 4, 5, 6).getTime();
    expect(formatClock(at)).toBe("03:04:05.006");
  });

  test("formatRate() and formatPercent() clamp nonsense to zero", () => {
    expect(formatRate(2.345)).toBe("2.3 tasks/s");
    expect(formatRate(-1)).toBe("0.0 tasks/s");
    expect(formatRate(Number.NaN, "jobs/s")).toBe("0.0 jobs/s");
    expect(formatRate(250)).toBe("250 tasks/s");
    expect(formatPercent(0.456)).toBe("46%");
    expect(formatPercent(2)).toBe("100%");
    expect(formatPercent(Number.NaN)).toBe("0%");
  });

  test("shortKey() keeps the last segment of a spawned task's key", () => {
    expect(shortKey("plan/fetch-3")).toBe("fetch-3");
    expect(shortKey("a/b/c")).toBe("c");
    expect(shortKey("plan")).toBe("plan");
  });

  test("truncate() and shortId() end cut text with an ellipsis", () => {
    expect(truncate("abcdef", 4)).toBe("abc…");
    expect(truncate("abc", 4)).toBe("abc");
    expect(truncate("abc", 0)).toBe("");
    expect(shortId("01ABCDEFGHIJ", 4)).toBe("01AB…");
    expect(shortId("01AB", 4)).toBe("01AB");
  });
});

describe("ThroughputMeter", () => {
  test("rate() counts the events of the sliding window only", () => {
    const m = new ThroughputMeter({ windowMs: 2000 });
    m.record(1000);
    m.record(1500, 3);
    m.record(2500);
    expect(m.total).toBe(5);
    expect(m.rate(2500)).toBe(2.5); // 5 events in (500, 2500]
    expect(m.rate(3600)).toBe(0.5); // only the one at 2500 is inside (1600, 3600]
    expect(m.rate(10_000)).toBe(0);
  });

  test("history() puts events in one-second buckets ending now, oldest first", () => {
    const m = new ThroughputMeter({ historySeconds: 3 });
    m.record(10_000);
    m.record(10_900);
    m.record(11_500, 2);
    // Ages at 12 s: 2 s, 1.1 s, 0.5 s (twice).
    expect(m.history(12_000)).toEqual([1, 1, 2]);
    // At 13 s the oldest event falls out of the 3-second history.
    expect(m.history(13_000)).toEqual([1, 2, 0]);
    m.reset();
    expect(m.total).toBe(0);
    expect(m.history(13_000)).toEqual([0, 0, 0]);
  });

  test("bad options are RangeErrors naming the option", () => {
    expect(() => new ThroughputMeter({ windowMs: 0 })).toThrow(/windowMs/);
    expect(() => new ThroughputMeter({ historySeconds: 1.5 })).toThrow(/historySeconds/);
  });

  test("sparklineBars() scales bars to the largest value and draws nothing for zero", () => {
    const bars = sparklineBars([0, 2, 4], 30, 20, 0);
    expect(bars).toHaveLength(3);
    expect(bars[0]).toEqual({ x: 0, y: 20, width: 10, height: 0 });
    expect(bars[1]).toEqual({ x: 10, y: 10, width: 10, height: 10 });
    expect(bars[2]).toEqual({ x: 20, y: 0, width: 10, height: 20 });
    expect(sparklineBars([], 30, 20)).toEqual([]);
  });
});
