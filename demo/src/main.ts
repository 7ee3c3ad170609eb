/**
 * The demo page: wires the storage, the executor and the views together. Everything it
 * draws is computed by the small pure modules next to it (tested under vitest).
 *
 * @module
 */

import "./style.css";
import {
  type ExecutorEventName,
  type ExecutorEvents,
  isJobFinal,
  type Job,
  type JobHandle,
  StorageClosedError,
  StorageQuotaError,
  type Task,
} from "../../mod.ts";
import { h, s } from "./dom.ts";
import { describeEvent, EventLog, LOGGED_EVENTS, renderLog } from "./event-log.ts";
import { formatDuration, formatPercent, formatRate, shortId } from "./format.ts";
import { layoutGraph, type LayoutOptions } from "./graph-layout.ts";
import { renderGraph } from "./graph-view.ts";
import { barSegments, jobProgress, resumeMessage, type VisualStatus } from "./progress.ts";
import { findLatestJob } from "./recovery.ts";
import { EXECUTOR_OPTIONS, openSession, type Session } from "./session.ts";
import {
  isDurable,
  parseStorageKind,
  STORAGE_KINDS,
  STORAGE_LABELS,
  STORAGE_SHORT,
  type StorageKind,
} from "./storage-kind.ts";
import { createTaskTable, updateTaskTable } from "./table-view.ts";
import { taskRows } from "./task-rows.ts";
import { sparklineBars, ThroughputMeter } from "./throughput.ts";
import {
  createRegistry,
  createStartCounter,
  DEFAULT_SETTINGS,
  digestJob,
  FailureInjector,
  JOB_NAME,
  normalizeSettings,
  readCompletions,
} from "./workflow.ts";

const doc = document;
const KIND_KEY = "task-core-demo:storage";
const params = new URLSearchParams(location.search);

/**
 * `localStorage` or `sessionStorage`, or `null` where the browser refuses them: with site
 * data blocked ("Block all cookies", some embedded or sandboxed contexts) merely reading
 * the property throws a SecurityError.
 */
function webStorage(which: "localStorage" | "sessionStorage"): globalThis.Storage | null {
  try {
    const store = globalThis[which];
    store.getItem(KIND_KEY);
    return store;
  } catch {
    return null;
  }
}
const prefs = webStorage("localStorage");
const tabStore = webStorage("sessionStorage");

const $ = <T extends HTMLElement>(id: string): T => {
  const el = doc.getElementById(id);
  if (!el) throw new Error(`Missing element #${id}`);
  return el as T;
};

const ui = {
  storage: $<HTMLSelectElement>("storage"),
  articles: $<HTMLInputElement>("articles"),
  speed: $<HTMLSelectElement>("speed"),
  failrate: $<HTMLSelectElement>("failrate"),
  start: $<HTMLButtonElement>("start"),
  pause: $<HTMLButtonElement>("pause"),
  cancel: $<HTMLButtonElement>("cancel"),
  injectTransient: $<HTMLButtonElement>("inject-transient"),
  injectFatal: $<HTMLButtonElement>("inject-fatal"),
  armed: $("armed"),
  banner: $("banner"),
  jobStatus: $("job-status"),
  jobId: $("job-id"),
  progressText: $("progress-text"),
  bar: $("bar"),
  throughput: $("throughput"),
  spark: doc.getElementById("spark") as unknown as SVGSVGElement,
  elapsed: $("elapsed"),
  retries: $("retries"),
  workers: $("workers"),
  workersNote: $("workers-note"),
  legend: $("legend"),
  graph: $("graph"),
  table: $("table"),
  log: $("log"),
  reportCard: $("report-card"),
  report: $("report"),
  storageNote: $("storage-note"),
};

// ---------------------------------------------------------------- state

const injector = new FailureInjector();
const starts = createStartCounter(tabStore);
const registry = createRegistry({ injector, starts });
const log = new EventLog(250);
const meter = new ThroughputMeter({ windowMs: 5000, historySeconds: 30 });
const progress = new Map<string, number>();
const table = createTaskTable(doc);
ui.table.append(table);

let session: Session | null = null;
let handle: JobHandle | null = null;
let job: Job | null = null;
let tasks: Task[] = [];
let busy = false;
let resumed: { jobId: string; done: number; total: number } | null = null;
let offEvents: (() => void)[] = [];
let renderedLog = -1;
/** The job whose end the banner told (told once, whether this tab's executor ended it or another tab's). */
let endTold: string | null = null;
/** The storage failure the banner told (told once per session). */
let storageTold = false;
/** The closing of a session whose storage closed under the page (awaited before another opens). */
let dropped: Promise<void> | null = null;
/** When the shown job's storage closed under the page: what the page shows of it stops there. */
let lostAt = 0;

// ---------------------------------------------------------------- form

for (const kind of STORAGE_KINDS) ui.storage.append(h(doc, "option", { value: kind, text: STORAGE_LABELS[kind] }));
const initial = normalizeSettings({
  articles: params.get("articles") ?? DEFAULT_SETTINGS.articles,
  workMs: params.get("workMs") ?? DEFAULT_SETTINGS.workMs,
  failRate: params.get("failRate") ?? DEFAULT_SETTINGS.failRate,
});
ui.articles.value = String(initial.articles);
selectClosest(ui.speed, initial.workMs);
selectClosest(ui.failrate, initial.failRate);

/** Select the option nearest to `value` (adding it when a URL asked for an unlisted one). */
function selectClosest(select: HTMLSelectElement, value: number): void {
  const options = Array.from(select.options);
  if (!options.some((o) => Number(o.value) === value)) {
    select.append(h(doc, "option", { value: String(value), text: `Custom (${value})` }));
  }
  select.value = String(value);
}

/** Show `settings` in the form (the resumed job's, which the URL's may not match). */
function showSettings(settings: ReturnType<typeof normalizeSettings>): void {
  ui.articles.value = String(settings.articles);
  selectClosest(ui.speed, settings.workMs);
  selectClosest(ui.failrate, settings.failRate);
}

function formSettings() {
  return normalizeSettings({ articles: ui.articles.value, workMs: ui.speed.value, failRate: ui.failrate.value });
}

const LEGEND: VisualStatus[] = [
  "pending",
  "ready",
  "running",
  "retrying",
  "completed",
  "failed",
  "cancelled",
  "paused",
];
ui.legend.append(
  ...LEGEND.map((st) => h(doc, "li", {}, h(doc, "span", { class: `chip s-${st}`, "aria-hidden": "true" }), st)),
);

// ---------------------------------------------------------------- banner and log

function banner(text: string, level: "info" | "success" | "warning" | "error" = "info"): void {
  ui.banner.hidden = false;
  ui.banner.className = `banner level-${level}`;
  ui.banner.textContent = text;
}

function note(text: string, level: "info" | "success" | "warning" | "error" = "info"): void {
  log.note(text, level);
  scheduleRefresh();
}

// ---------------------------------------------------------------- storage sessions

function listen(s: Session): void {
  const ex = s.executor;
  offEvents = LOGGED_EVENTS.map((name) =>
    ex.on(name, (payload: ExecutorEvents[ExecutorEventName]) => {
      const entry = describeEvent(name, payload, Date.now());
      log.add(entry);
      if (name === "task:completed") meter.record(Date.now());
      if (name === "task:completed" || name === "task:failed" || name === "task:retrying") {
        progress.delete((payload as { task: Task }).task.id);
      }
      if (name === "job:completed" || name === "job:failed" || name === "job:cancelled") {
        onJobEnded((payload as ExecutorEvents["job:completed"]).job);
      }
      if (name === "storage:error") onStorageError((payload as ExecutorEvents["storage:error"]).error);
      scheduleRefresh();
    })
  );
  offEvents.push(ex.on("task:progress", (p) => {
    progress.set(p.task.id, p.fraction);
    scheduleRefresh();
  }));
}

/** Tell the end of the shown job, once (the executor that ended it may be another tab's). */
function onJobEnded(ended: Pick<Job, "id" | "status">): void {
  if (ended.id !== handle?.id || endTold === ended.id || !isJobFinal(ended.status)) return;
  endTold = ended.id;
  if (ended.status === "completed") {
    banner("The job completed: every task ran to the end. The digest is below.", "success");
  } else if (ended.status === "failed") {
    banner("The job failed: a task failed for good and its dependents were cancelled. See the table.", "error");
  } else banner("The job was cancelled: running tasks were aborted, the others will never run.", "warning");
}

/** A storage that closed under the page (site data cleared, a newer version in another tab) or ran out of room. */
function onStorageError(error: unknown): void {
  if (error instanceof StorageClosedError && session) {
    dropClosedSession();
    note(`The storage closed under the page: ${error.message}`, "error");
  }
  if (storageTold) return;
  if (error instanceof StorageClosedError) {
    storageTold = true;
    banner(`${error.message}. Reload the page to open it again, or pick another storage.`, "error");
  } else if (error instanceof StorageQuotaError) {
    storageTold = true;
    banner(`The browser refused to store more: ${error.message}. Free some space, or pick Memory storage.`, "error");
  }
}

/**
 * Let go of a session whose storage closed under the page: its executor stopped, and every
 * call would fail. The page keeps showing the job as it last read it, no longer as open.
 */
function dropClosedSession(): void {
  const s0 = session;
  if (!s0) return;
  for (const off of offEvents) off();
  offEvents = [];
  session = null;
  lostAt = Date.now();
  dropped = s0.close().catch(() => {});
  scheduleRefresh();
}

async function switchStorage(kind: StorageKind, afterReload: boolean): Promise<void> {
  busy = true;
  render();
  try {
    for (const off of offEvents) off();
    offEvents = [];
    if (session) await session.close();
    await dropped;
    session = null;
    handle = null;
    job = null;
    tasks = [];
    progress.clear();
    meter.reset();
    endTold = null;
    storageTold = false;
    // This tab's choice (what its reload reopens), and the default of new tabs.
    try {
      tabStore?.setItem(KIND_KEY, kind);
      prefs?.setItem(KIND_KEY, kind);
    } catch {
      // Full or refused: the choice is just not remembered.
    }
    ui.storage.value = kind;
    ui.storageNote.textContent = isDurable(kind)
      ? `${STORAGE_LABELS[kind]}: jobs survive a reload.`
      : `${STORAGE_LABELS[kind]}.`;
    try {
      session = await openSession(kind, registry);
    } catch (e) {
      const hint = kind === "memory" ? "" : " Pick Memory in the Storage list to run the demo without storage.";
      banner(`Could not open ${STORAGE_LABELS[kind]}: ${(e as Error).message.replace(/\.$/, "")}.${hint}`, "error");
      note(`Opening ${STORAGE_SHORT[kind]} failed: ${(e as Error).message}`, "error");
      return;
    }
    listen(session);
    note(`Opened ${STORAGE_LABELS[kind]}; executor ${shortId(session.executor.id, 14)} started`);
    if (session.released > 0) {
      note(`Released ${session.released} task(s) this tab was running before the reload`, "warning");
    }
    if (session.recreated) {
      note(`${STORAGE_LABELS[kind]} was deleted since this browser last opened it: its jobs are gone`, "warning");
    }
    const latest = await findLatestJob(session.storage, JOB_NAME);
    if (!latest) {
      banner(
        session.recreated
          ? `The ${STORAGE_SHORT[kind]} database was deleted since this browser last opened it (by another tab, ` +
            `or by the browser when it could not write): the jobs it held are gone. Press “Start job” for a new one.`
          : `No digest job in ${STORAGE_SHORT[kind]} yet: press “Start job”.`,
        session.recreated ? "warning" : "info",
      );
      return;
    }
    handle = await session.executor.job(latest.id);
    job = latest;
    tasks = await handle.tasks();
    const p = jobProgress(tasks);
    if (!isJobFinal(latest.status)) {
      // The form shows what the resumed job runs with, not the URL's or the defaults.
      const meta = latest.metadata;
      if (meta !== null && typeof meta === "object" && !Array.isArray(meta)) showSettings(normalizeSettings(meta));
      resumed = { jobId: latest.id, done: p.done, total: p.total };
      const text = resumeMessage(latest, p, STORAGE_SHORT[kind], afterReload);
      banner(text, "success");
      note(text, "success");
    } else {
      banner(
        `Showing the last job (${latest.status}, ${p.total} tasks, stored in ${STORAGE_SHORT[kind]}). ` +
          `Press “Start job” for a new one.`,
      );
    }
  } finally {
    busy = false;
    scheduleRefresh();
  }
}

/**
 * Show the newest unfinished digest job when this tab shows none or an ended one: another
 * tab sharing the storage started it (this tab's executor already helps run it). Returns
 * whether it did.
 */
async function followOpenJob(s: Session, starting = false): Promise<boolean> {
  if (!isDurable(s.kind) || (job !== null && !isJobFinal(job.status))) return false;
  const latest = await findLatestJob(s.storage, JOB_NAME);
  if (!latest || isJobFinal(latest.status) || latest.id === job?.id) return false;
  // Re-check: the page may have moved on while the storage answered.
  if (s !== session || (busy && !starting) || (job !== null && !isJobFinal(job.status))) return false;
  handle = await s.executor.job(latest.id);
  job = latest;
  tasks = await handle.tasks();
  resumed = null;
  progress.clear();
  meter.reset();
  const meta = latest.metadata;
  if (meta !== null && typeof meta === "object" && !Array.isArray(meta)) showSettings(normalizeSettings(meta));
  const text = `Job ${shortId(latest.id, 10)} was started in another tab: this tab shows it and helps run it.`;
  banner(text, "info");
  note(text);
  return true;
}

/** Run `fn` holding a Web Lock shared by the tabs of this origin (or just run it where Web Locks are missing or refused). */
async function exclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const locks = globalThis.navigator?.locks;
  if (!locks) return await fn();
  let ran = false;
  try {
    return await locks.request(name, () => {
      ran = true;
      return fn();
    });
  } catch (e) {
    if (ran) throw e;
    return await fn(); // Refused (site data blocked): then no other tab shares the storage either.
  }
}

// ---------------------------------------------------------------- actions

async function act(what: string, fn: () => Promise<unknown>): Promise<void> {
  if (busy) return;
  busy = true;
  render();
  try {
    await fn();
  } catch (e) {
    banner(`${what} failed: ${(e as Error).message}`, "error");
    note(`${what} failed: ${(e as Error).message}`, "error");
    onStorageError(e);
  } finally {
    busy = false;
    scheduleRefresh();
  }
}

ui.start.addEventListener("click", () =>
  void act("Start", async () => {
    if (!session) throw new Error("No storage is open");
    const s0 = session;
    const settings = formSettings();
    // One digest at a time across the tabs sharing the storage: another tab may have
    // started one since this tab last looked; show that one instead of starting a second.
    const started = await exclusive(`task-core-demo:start:${s0.kind}`, async () => {
      if (await followOpenJob(s0, true)) return null;
      // followOpenJob() also says no when this page already shows an open job: its refresh
      // may have taken up another tab's job while this press waited for the lock, or just
      // before it (the press landed before the Start button was drawn disabled).
      if (job !== null && !isJobFinal(job.status)) return null;
      return await s0.executor.submit(digestJob(settings));
    });
    if (!started) return;
    handle = started;
    job = await handle.status();
    tasks = await handle.tasks();
    resumed = null;
    progress.clear();
    meter.reset();
    banner(
      `Started job ${shortId(handle.id, 10)}: ${settings.articles} articles on ${STORAGE_SHORT[session.kind]}.` +
        (isDurable(session.kind) ? " Try reloading the page while it runs." : ""),
      "info",
    );
    note(`Submitted job ${shortId(handle.id, 10)} (${settings.articles} articles)`);
    // Keep the demo's storage small: forget all but the last few ended jobs.
    session.storage.prune({ keepLast: 5 }).catch(() => {});
  }));

ui.pause.addEventListener("click", () =>
  void act("Pause", async () => {
    if (!handle || !job) return;
    if (job.status === "paused") {
      job = await handle.resume();
      banner("Resumed: paused tasks are ready again.");
      note("Job resumed");
    } else {
      job = await handle.pause();
      banner("Paused: no new task starts; tasks already running finish. Press Resume to go on.", "warning");
      note("Job paused", "warning");
    }
  }));

ui.cancel.addEventListener("click", () =>
  void act("Cancel", async () => {
    if (!handle) return;
    job = await handle.cancel();
  }));

ui.injectTransient.addEventListener("click", () => {
  injector.arm("transient");
  note("Armed: the next fetch attempt fails with a transient error (it will be retried)", "warning");
});
ui.injectFatal.addEventListener("click", () => {
  injector.arm("fatal");
  note("Armed: the next fetch fails for good (NonRetryableError); the job will fail", "warning");
});
injector.onChange(() => scheduleRefresh());

ui.storage.addEventListener("change", () => {
  const kind = parseStorageKind(ui.storage.value);
  if (kind !== session?.kind) void switchStorage(kind, false);
});

// ---------------------------------------------------------------- refresh and render

let refreshTimer: ReturnType<typeof setTimeout> | null = null;
let refreshing = false;
let again = false;

function scheduleRefresh(): void {
  if (refreshTimer !== null) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    void refresh();
  }, 100);
}

async function refresh(): Promise<void> {
  if (refreshing) {
    again = true;
    return;
  }
  refreshing = true;
  try {
    const h0 = handle;
    if (h0 && session) {
      const [j, t] = await Promise.all([h0.status(), h0.tasks()]);
      if (h0 === handle) {
        const wasOpen = job !== null && job.id === j.id && !isJobFinal(job.status);
        job = j;
        tasks = t;
        if (wasOpen) onJobEnded(j);
      }
    }
    if (session && !busy) await followOpenJob(session);
  } catch (e) {
    if (!busy) {
      console.warn("refresh failed", e);
      onStorageError(e);
    }
  } finally {
    refreshing = false;
  }
  render();
  if (again) {
    again = false;
    scheduleRefresh();
  }
}

function graphOptions(): LayoutOptions {
  const width = ui.graph.clientWidth || 800;
  return width < 560
    ? { fitWidth: width, nodeWidth: 120, nodeHeight: 26, columnGap: 10, rowGap: 6, padding: 2, charWidth: 6.2 }
    : { fitWidth: width, nodeWidth: 140, nodeHeight: 28, columnGap: 46, rowGap: 8 };
}

let lastGraphKey = "";

function render(): void {
  // A job shown without a session: its storage closed under the page, its state is unknown.
  const stale = job !== null && session === null;
  const now = stale ? lostAt : Date.now();
  const p = jobProgress(tasks);
  const status = job?.status ?? null;
  const open = status !== null && !isJobFinal(status) && !stale;

  // Job line.
  ui.jobStatus.textContent = stale ? "unknown" : status ?? "none";
  ui.jobStatus.className = `pill s-${stale ? "none" : status ?? "none"}`;
  ui.jobStatus.title = stale ? "The storage closed: reload the page to see the job again" : "";
  ui.jobId.textContent = job
    ? `${shortId(job.id, 10)} · ${STORAGE_SHORT[session?.kind ?? parseStorageKind(ui.storage.value)]}`
    : "";
  ui.progressText.textContent = job ? `${p.done} / ${p.total} tasks · ${formatPercent(p.fraction)}` : "";
  ui.bar.setAttribute("aria-valuenow", String(Math.round(p.fraction * 100)));
  ui.bar.replaceChildren(
    ...barSegments(p).map((seg) =>
      h(doc, "span", {
        class: `seg s-${seg.status}`,
        style: `width:${(seg.fraction * 100).toFixed(2)}%`,
        title: `${seg.count} ${seg.status}`,
      })
    ),
  );
  ui.throughput.textContent = formatRate(meter.rate(now));
  ui.spark.replaceChildren(
    ...sparklineBars(meter.history(now), 90, 20).map((b) =>
      s(doc, "rect", { x: b.x, y: b.y, width: b.width, height: b.height })
    ),
  );
  ui.elapsed.textContent = job ? formatDuration((job.finishedAt ?? now) - job.createdAt) : "—";
  ui.retries.textContent = String(p.retries);
  const stats = session?.executor.stats();
  ui.workers.textContent = `${stats?.running ?? 0} / ${EXECUTOR_OPTIONS.maxWorkers}`;
  ui.workersNote.textContent = stats && stats.queued > 0 ? `+${stats.queued} queued` : "";

  // Buttons.
  ui.start.disabled = busy || !session || open;
  ui.pause.disabled = busy || !open;
  ui.pause.textContent = status === "paused" ? "Resume" : "Pause";
  ui.pause.classList.toggle("primary", status === "paused");
  ui.cancel.disabled = busy || !open;
  // Switching away would drop a memory job and abort a durable one's running tasks.
  ui.storage.disabled = busy || open;
  ui.storage.title = open ? "Finish or cancel the job to switch storage" : "";
  const armed = injector.armed;
  ui.armed.textContent = armed.length === 0 ? "" : `armed: ${armed.join(", ")}`;

  // Graph: rebuilt only when something it shows changed.
  const opts = graphOptions();
  const graphKey = JSON.stringify([
    opts.nodeWidth,
    opts.fitWidth,
    tasks.map((t) => [t.id, t.status, t.attempts, t.error !== null]),
    [...progress].map(([id, f]) => [id, Math.round(f * 20)]),
  ]);
  if (graphKey !== lastGraphKey) {
    lastGraphKey = graphKey;
    if (tasks.length === 0) {
      ui.graph.replaceChildren(h(doc, "p", { class: "empty", text: "Start a job to see its tasks." }));
    } else ui.graph.replaceChildren(renderGraph(doc, layoutGraph(tasks, opts), { progress }));
  }

  // Table and log.
  updateTaskTable(table, taskRows(tasks, now, job ? starts.get(job.id) : {}));
  if (log.version !== renderedLog) {
    renderedLog = log.version;
    renderLog(ui.log, log.entries);
  }

  // Report.
  const report = tasks.find((t) => t.agent === "report" && t.status === "completed");
  const digest = (report?.output as { digest?: string[] } | null)?.digest;
  ui.reportCard.hidden = !digest;
  if (digest && ui.report.childElementCount !== digest.length) {
    ui.report.replaceChildren(...digest.map((line) => h(doc, "li", { text: line.replace(/^\d+\.\s*/, "") })));
  }
}

setInterval(() => void refresh(), 1000);
globalThis.addEventListener("resize", () => {
  lastGraphKey = "";
  render();
});

// ---------------------------------------------------------------- test hook

/** What the page exposes for the end-to-end test (and the curious, in the console). */
const api = {
  get ready(): boolean {
    return session !== null && !busy;
  },
  get storage(): StorageKind | null {
    return session?.kind ?? null;
  },
  get jobId(): string | null {
    return job?.id ?? null;
  },
  get jobStatus(): string | null {
    return job?.status ?? null;
  },
  get resumed() {
    return resumed;
  },
  get released(): number {
    return session?.released ?? 0;
  },
  /** The job as stored now, with executions per task key (`starts`, from sessionStorage) and durable completions. */
  async snapshot() {
    if (!session || !handle) return null;
    const [j, t] = await Promise.all([handle.status(), handle.tasks()]);
    const keys = t.map((x) => x.key);
    return {
      jobId: j.id,
      status: j.status,
      taskCount: j.taskCount,
      tasks: t.map((x) => ({ key: x.key, status: x.status, attempts: x.attempts })),
      starts: starts.get(j.id),
      completions: await readCompletions(session.storage, j.id, keys),
    };
  },
};
(globalThis as { __demo?: typeof api }).__demo = api;

// "after reload" only when this page was reloaded; a new tab finds the job "from" its storage.
const reloaded = (performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming | undefined)?.type ===
  "reload";
// The URL's storage, else this tab's (a reload reopens the storage its job is in, whatever
// other tabs picked since), else the last one picked in any tab.
const kind0 = parseStorageKind(params.get("storage") ?? tabStore?.getItem(KIND_KEY) ?? prefs?.getItem(KIND_KEY));
if (!prefs || !tabStore || !globalThis.indexedDB) {
  note("This browser refuses this page local storage (site data blocked?): only Memory storage can work", "warning");
}
void switchStorage(kind0, reloaded);
