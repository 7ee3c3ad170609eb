/**
 * Checks that deno.json exports, package.json exports (and its `types` and `typesVersions`)
 * and the build entries are one list.
 * Run with `deno run -A scripts/check-exports.ts`.
 */
import { entries } from "../tsup.config.ts";

const deno = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
const pkg = JSON.parse(await Deno.readTextFile(new URL("../package.json", import.meta.url)));

const problems: string[] = [];
const denoExports: Record<string, string> = deno.exports;
// "./package.json" is metadata for tools that read the manifest (bundlers, `require.resolve`
// of the package's version), not a module: it has no build entry or JSR export.
const { "./package.json": manifest, ...pkgExports }: Record<string, unknown> = pkg.exports;
if (manifest !== "./package.json") problems.push(`./package.json: package.json exports it as ${manifest}`);

const fromBuild = new Map<string, string>();
for (const [out, src] of Object.entries(entries)) {
  fromBuild.set(out === "mod" ? "." : `./${out}`, `./${src}`);
}
const keys = new Set([...Object.keys(denoExports), ...Object.keys(pkgExports), ...fromBuild.keys()]);
for (const key of [...keys].sort()) {
  const src = fromBuild.get(key);
  if (!src) problems.push(`${key}: missing from the build entries (tsup.config.ts)`);
  if (denoExports[key] === undefined) problems.push(`${key}: missing from deno.json exports`);
  else if (src && denoExports[key] !== src) {
    problems.push(`${key}: deno.json says ${denoExports[key]}, build says ${src}`);
  }
  const p = pkgExports[key] as { types: string; import: string } | undefined;
  if (!p) problems.push(`${key}: missing from package.json exports`);
  else if (src) {
    const base = src.replace(/^\.\//, "./dist/").replace(/\.ts$/, "").replace(/^\.\/dist\/mod$/, "./dist/mod");
    if (p.import !== `${base}.js`) problems.push(`${key}: package.json import is ${p.import}, expected ${base}.js`);
    if (p.types !== `${base}.d.ts`) problems.push(`${key}: package.json types is ${p.types}, expected ${base}.d.ts`);
    // TypeScript's `node10` resolution reads no `exports`: the root's types come from
    // `types`, each subpath's from `typesVersions`.
    const legacy = key === "." ? pkg.types : pkg.typesVersions?.["*"]?.[key.slice(2)]?.[0];
    if (legacy !== p.types) {
      const field = key === "." ? "types" : `typesVersions["*"]["${key.slice(2)}"]`;
      problems.push(`${key}: package.json ${field} is ${legacy}, expected ${p.types}`);
    }
  }
}
for (const sub of Object.keys(pkg.typesVersions?.["*"] ?? {})) {
  if (!keys.has(`./${sub}`)) problems.push(`./${sub}: in package.json typesVersions but not exported`);
}
if (problems.length) {
  console.error("Export lists disagree:\n- " + problems.join("\n- "));
  Deno.exit(1);
}
console.log(`exports agree: ${[...keys].sort().join(", ")}`);
