/**
 * The public types of the entries a Node, Deno or Bun project uses (everything but the
 * IndexedDB adapter) type-check without the DOM lib: a Node project with `@types/node`
 * and `skipLibCheck` off must not meet `Cannot find name 'IDBFactory'` in our declarations.
 * The declarations are emitted per file (the sources use `isolatedDeclarations`), as the
 * published `.d.ts` files and the JSR sources declare them.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterAll, expect, test } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
mkdirSync(join(root, "node_modules/.cache"), { recursive: true });
const out = mkdtempSync(join(root, "node_modules/.cache/task-core-types-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []
  );
}

test("the Node-side entries' declarations need no DOM lib", () => {
  const options: ts.CompilerOptions = { declaration: true, isolatedDeclarations: true, target: ts.ScriptTarget.ES2022 };
  for (const file of ["mod.ts", ...sources("src"), ...sources("adapters")]) {
    const { outputText, diagnostics } = ts.transpileDeclaration(readFileSync(join(root, file), "utf8"), {
      fileName: file,
      compilerOptions: options,
    });
    expect(diagnostics ?? [], file).toEqual([]);
    const target = join(out, file.replace(/\.ts$/, ".d.ts"));
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, outputText);
  }
  const consumer = join(out, "consumer.ts");
  writeFileSync(
    consumer,
    [
      `import { AgentRegistry, Executor } from "./mod.ts";`,
      `import { createMemoryStorage } from "./adapters/memory.ts";`,
      `import { createMemoryPersister, openSqlJsStorage } from "./adapters/sqljs.ts";`,
      `import { openSqlJsFileStorage } from "./adapters/sqljs-file.ts";`,
      `import { openPostgresStorage } from "./adapters/postgres.ts";`,
      `new Executor({ storage: createMemoryStorage(), registry: new AgentRegistry() });`,
      `void openSqlJsStorage({ persister: createMemoryPersister() });`,
      `void openSqlJsFileStorage("tasks.sqlite");`,
      `void openPostgresStorage;`,
    ].join("\n"),
  );
  const program = ts.createProgram([consumer], {
    strict: true,
    noEmit: true,
    skipLibCheck: false,
    allowImportingTsExtensions: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ["lib.es2022.d.ts"],
    types: ["node"],
    typeRoots: [join(root, "node_modules/@types")],
  });
  const problems = ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file ? `${relative(out, d.file.fileName)}: ` : "";
    return where + ts.flattenDiagnosticMessageText(d.messageText, "\n");
  });
  expect(problems).toEqual([]);
});
