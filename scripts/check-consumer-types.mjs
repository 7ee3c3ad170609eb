// Type-checks a consumer of the packed package (what `npm pack` ships: package.json and
// dist/) under each module resolution a TypeScript project may use: `bundler` and `node16`
// read the `exports` map, `node10` (`"moduleResolution": "node"`, still common in older
// web projects) reads `types` and `typesVersions`. Every entry must resolve to its
// declarations in each. Run after `npm run build`.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const root = fileURLToPath(new URL("..", import.meta.url));
// Inside the project's node_modules, so that the package's own dependencies (ajv, idb,
// sql.js) resolve from there, as they would from the consumer's.
mkdirSync(join(root, "node_modules/.cache"), { recursive: true });
const dir = mkdtempSync(join(root, "node_modules/.cache/task-core-consumer-"));
try {
  execFileSync("npm", ["pack", "--ignore-scripts", "--silent", "--pack-destination", dir], { cwd: root });
  const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"));
  if (!tarball) throw new Error("npm pack wrote no tarball");
  const pkg = join(dir, "node_modules/@dagger/task-core");
  mkdirSync(pkg, { recursive: true });
  execFileSync("tar", ["xzf", join(dir, tarball), "-C", pkg, "--strip-components=1"]);
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  const consumer = join(dir, "consumer.ts");
  writeFileSync(
    consumer,
    [
      `import { AgentRegistry, Executor, type Task } from "@dagger/task-core";`,
      `import { createMemoryStorage } from "@dagger/task-core/adapters/memory";`,
      `import { createMemoryPersister, openSqlJsStorage } from "@dagger/task-core/adapters/sqljs";`,
      `import { openSqlJsFileStorage } from "@dagger/task-core/adapters/sqljs-file";`,
      `import { openIndexedDbStorage } from "@dagger/task-core/adapters/indexeddb";`,
      `import { openPostgresStorage } from "@dagger/task-core/adapters/postgres";`,
      `const executor: Executor = new Executor({ storage: createMemoryStorage(), registry: new AgentRegistry() });`,
      `const status: Task["status"] = "ready";`,
      `void executor; void status;`,
      `void openSqlJsStorage({ persister: createMemoryPersister() });`,
      `void openSqlJsFileStorage; void openIndexedDbStorage; void openPostgresStorage;`,
    ].join("\n"),
  );
  const modes = [
    ["bundler", ts.ModuleKind.ESNext, ts.ModuleResolutionKind.Bundler],
    ["node16", ts.ModuleKind.Node16, ts.ModuleResolutionKind.Node16],
    ["node10", ts.ModuleKind.ESNext, ts.ModuleResolutionKind.Node10],
  ];
  const failed = [];
  for (const [name, module, moduleResolution] of modes) {
    const program = ts.createProgram([consumer], {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module,
      moduleResolution,
      // node10 is deprecated in TypeScript 6 (and gone in 7), yet projects on 5.x use it.
      ignoreDeprecations: "6.0",
      lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
      types: ["node"],
      typeRoots: [join(root, "node_modules/@types")],
    });
    const problems = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file ? `${relative(dir, d.file.fileName)}: ` : "";
      return where + ts.flattenDiagnosticMessageText(d.messageText, "\n");
    });
    if (problems.length > 0) failed.push(`moduleResolution ${name}:\n  ${problems.join("\n  ")}`);
    else console.log(`consumer types resolve with moduleResolution ${name}`);
  }
  if (failed.length > 0) {
    console.error(`The packed package's types do not resolve:\n${failed.join("\n")}`);
    process.exitCode = 1;
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
