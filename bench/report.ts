/** Writes a benchmark's result as JSON under bench/results/. */
import { mkdir, writeFile } from "node:fs/promises";

export async function writeResult(name: string, data: unknown): Promise<void> {
  const dir = new URL("./results/", import.meta.url);
  await mkdir(dir, { recursive: true });
  const body = { name, at: new Date().toISOString(), runtime: `node ${process.version}`, data };
  await writeFile(new URL(`${name}.json`, dir), JSON.stringify(body, null, 2) + "\n");
}
