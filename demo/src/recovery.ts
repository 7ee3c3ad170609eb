/**
 * What the page does when it comes back after a reload: find the digest job to resume,
 * and hand back at once the tasks that the page's previous executor was running.
 *
 * Why the second part: an executor that dies with its page leaves its tasks `running`
 * under a lease; the next executor's recovery sends them back to `ready` only when the
 * lease has expired. The page knows its previous executor's id (kept in
 * `sessionStorage`) and that it is gone, so it releases those tasks itself instead of
 * waiting. The library has no call for "adopt the leases of my previous incarnation".
 *
 * @module
 */

import { ConflictError, InvalidTransitionError, isJobFinal, type Job, type Storage } from "../../mod.ts";

/** The latest job named `name`, preferring an unfinished one. */
export async function findLatestJob(storage: Pick<Storage, "listJobs">, name: string): Promise<Job | undefined> {
  const jobs = (await storage.listJobs()).filter((j) => j.name === name);
  const open = jobs.filter((j) => !isJobFinal(j.status));
  return open.at(-1) ?? jobs.at(-1);
}

/**
 * Send the tasks still leased by `owner` (an executor known to be gone) back to `ready`,
 * with an error saying why; returns how many were released. A task that changed
 * meanwhile is left alone. The executions that were interrupted still show in the
 * page's execution counts.
 */
export async function releaseLeasesOf(
  storage: Pick<Storage, "listTasks" | "commit">,
  owner: string,
  now: number,
  jobId?: string,
): Promise<number> {
  const running = await storage.listTasks(jobId ? { jobId, status: "running" } : { status: "running" });
  let released = 0;
  for (const t of running) {
    if (t.leaseOwner !== owner || (jobId && t.jobId !== jobId)) continue;
    // An at-most-once task whose start was stored may have run: it is left to the
    // executor's recovery, which blocks it for a person. One that never started is released.
    if (t.durability === "at-most-once" && t.startedAt !== null) continue;
    try {
      await storage.commit([{
        type: "updateTask",
        id: t.id,
        expect: { version: t.version, status: "running" },
        set: {
          status: "ready",
          runAt: now,
          // Like a graceful shutdown, the interrupted attempt is not counted against `maxAttempts`.
          attempts: Math.max(0, t.attempts - 1),
          statusReason: "Released after a page reload",
          error: { name: "PageReloadError", message: "Interrupted by a page reload", retryable: true, at: now },
        },
      }], now);
      released++;
    } catch (e) {
      if (!(e instanceof ConflictError || e instanceof InvalidTransitionError)) throw e;
    }
  }
  return released;
}
