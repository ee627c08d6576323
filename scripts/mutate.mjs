// Mutation checks: applies each deliberate break of tests/mutations/*.md to a scratch copy of the
// repo, builds it, and runs the tests until one fails. A break no test catches "survived": the
// suite has a hole there. Run through scripts/mutate (which sets up the test services first).
//
// Usage: scripts/mutate [--check] [--list] [--full] [--committed] [name-regex ...]
//   --check      only validate the catalogue (each find text occurs exactly once); no build
//   --list       print the breaks' names
//   --full       skip the "caught by" shortcut: Rust tests, then every JS file, in order
//   --committed  break the last commit's files rather than the working tree's
// Exit status: 0 when every selected break was caught, 1 otherwise.

import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync, readdirSync, mkdirSync, existsSync, symlinkSync, rmSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const catalogueDir = join(root, "tests", "mutations");
const work = join(root, "target", "mutate");
const tree = join(work, "tree");
const targetDir = join(work, "target");
const logs = join(work, "logs");

/** Parses one catalogue file into breaks: `## name`, `- file:`, `- caught by:`, find/replace blocks. */
export function parseCatalogue(text, source) {
  const breaks = [];
  for (const section of text.split(/^## /m).slice(1)) {
    const name = section.split("\n", 1)[0].trim();
    const field = (key) => section.match(new RegExp(`^- ${key}:\\s*(.+)$`, "m"))?.[1].trim();
    const block = (kind) => section.match(new RegExp("^```" + kind + "\\n([\\s\\S]*?)^```\\s*$", "m"))?.[1];
    const file = field("file")?.replace(/`/g, "");
    const caughtBy = field("caught by");
    const find = block("find");
    const replace = block("replace") ?? "";
    const problems = [];
    if (!/^[a-z0-9-]+$/.test(name)) problems.push("name must be kebab-case");
    if (!file) problems.push("no `- file:`");
    if (!caughtBy || !/^(js|rust) \S/.test(caughtBy)) problems.push("no `- caught by: js <file> [pattern]` or `rust <args>`");
    if (find === undefined) problems.push("no ```find block");
    breaks.push({ name, source, file, caughtBy, find: find?.replace(/\n$/, ""), replace: replace.replace(/\n$/, ""), problems });
  }
  return breaks;
}

function catalogue() {
  const files = readdirSync(catalogueDir).filter((f) => f.endsWith(".md") && f !== "README.md").sort();
  const breaks = files.flatMap((f) => parseCatalogue(readFileSync(join(catalogueDir, f), "utf8"), f));
  const seen = new Set();
  for (const b of breaks) {
    if (seen.has(b.name)) b.problems.push("name used twice");
    seen.add(b.name);
    if (b.problems.length || !b.file) continue;
    const path = join(root, b.file);
    if (!existsSync(path)) { b.problems.push(`${b.file} does not exist`); continue; }
    const count = readFileSync(path, "utf8").split(b.find).length - 1;
    if (count !== 1) b.problems.push(`find text occurs ${count} times in ${b.file} (must be once)`);
  }
  return breaks;
}

/**
 * Runs a command in the scratch tree; the output goes to `log`. Returns "pass" (exit 0, and with
 * `mustTest` at least one test ran, so that a name pattern matching nothing proves nothing),
 * "fail" (a test failed: the runner says so), or "broken" (anything else: tests that no longer
 * compile, a timeout, a missing service), which proves nothing about the break.
 */
function outcome(log, cmd, args, cwd = tree, mustTest = false) {
  writeFileSync(log, `$ ${cmd} ${args.join(" ")}\n`, { flag: "a" });
  const result = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, CARGO_TARGET_DIR: targetDir, BRIDGE_BIN: join(targetDir, "debug", "bridge") },
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 1 << 30,
    timeout: 20 * 60 * 1000,
  });
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}`;
  writeFileSync(log, `${output}\nexit ${result.status ?? result.signal}\n`, { flag: "a" });
  if (result.status === 0) {
    if (mustTest && !/^# pass [1-9]|^test result: ok\. [1-9]/m.test(output)) {
      writeFileSync(log, "ran no test\n", { flag: "a" });
      return "broken";
    }
    return "pass";
  }
  return /^test result: FAILED|^# fail [1-9]/m.test(output) ? "fail" : "broken";
}

/** Runs a command; whether it exited 0 (a build). */
function run(log, cmd, args, cwd = tree) {
  return outcome(log, cmd, args, cwd) === "pass";
}

const jsFiles = () => readdirSync(join(tree, "tests", "js")).filter((f) => f.endsWith(".test.mjs")).sort();
const nodeTest = (file, pattern) => [
  "--test", "--test-concurrency=1", "--test-timeout=120000",
  ...(pattern ? ["--test-name-pattern", pattern] : []),
  file,
];

/** One test target: what `caught by` names, or a step of the full order. */
function target(spec) {
  const [kind, ...rest] = spec.split(/\s+/);
  if (kind === "rust") return { label: spec, cmd: "cargo", args: ["test", ...rest], cwd: tree };
  const [file, ...pattern] = rest;
  return { label: spec, cmd: "node", args: nodeTest(file, pattern.join(" ")), cwd: join(tree, "tests", "js") };
}

function fullOrder() {
  return [
    { label: "rust (cargo test --workspace)", cmd: "cargo", args: ["test", "--workspace"], cwd: tree },
    ...jsFiles().map((f) => ({ label: `js ${f}`, cmd: "node", args: nodeTest(f), cwd: join(tree, "tests", "js") })),
  ];
}

/**
 * Copies the working tree (tracked and untracked files, not ignored ones) into the scratch tree,
 * or with `committed` the last commit's files; files whose content did not change are left alone,
 * so that the next build compiles only what changed.
 */
function syncTree(committed) {
  mkdirSync(tree, { recursive: true });
  let source = root;
  let files = spawnSync("git", ["ls-files", "-co", "--exclude-standard"], { cwd: root, encoding: "utf8" }).stdout;
  if (committed) {
    source = join(work, "head");
    spawnSync("rm", ["-rf", source]);
    mkdirSync(source, { recursive: true });
    spawnSync("sh", ["-c", `git archive --format=tar HEAD | tar -x -C '${source}'`], { cwd: root, stdio: "inherit" });
    files = spawnSync("git", ["ls-tree", "-r", "--name-only", "HEAD"], { cwd: root, encoding: "utf8" }).stdout;
  }
  files = files.split("\n").filter((f) => f && existsSync(join(source, f))).join("\n");
  // Without -t: a copied file gets the time of the copy, so cargo rebuilds it even when the
  // source's time (a commit's, from git archive) is older than the scratch tree's last build.
  const synced = spawnSync("rsync", ["-rlp", "--checksum", "--files-from=-", "./", `${tree}/`], {
    cwd: source,
    input: files,
    stdio: ["pipe", "inherit", "inherit"],
  });
  if (synced.status !== 0) throw new Error(`rsync into ${tree} failed (${synced.status})`);
  // `--files-from` never deletes: files the source no longer has (removed, renamed, or untracked
  // ones of an earlier working-tree copy) are removed here.
  const wanted = new Set(files.split("\n").filter(Boolean));
  const listed = spawnSync("find", [".", "-path", "./tests/js/node_modules", "-prune", "-o", "-type", "f", "-print"], { cwd: tree, encoding: "utf8" }).stdout;
  for (const file of listed.split("\n").filter(Boolean)) {
    const relative = file.replace(/^\.\//, "");
    if (!wanted.has(relative)) rmSync(join(tree, relative));
  }
  const modules = join(tree, "tests", "js", "node_modules");
  if (!existsSync(modules)) symlinkSync(join(root, "tests", "js", "node_modules"), modules);
}

/**
 * The first run starts the scratch target directory from the repo's own debug build: the
 * dependencies' artifacts are reused as they are (their build does not depend on where the
 * workspace sits), so only the workspace's own crates are compiled again.
 */
function seedTarget() {
  const built = join(root, "target", "debug");
  if (existsSync(targetDir) || !existsSync(join(built, "deps"))) return;
  mkdirSync(join(targetDir, "debug"), { recursive: true });
  for (const dir of ["deps", "build", ".fingerprint"]) {
    spawnSync("cp", ["-a", join(built, dir), join(targetDir, "debug", dir)], { stdio: "inherit" });
  }
}

function secondsSince(start) {
  return `${Math.round((Date.now() - start) / 1000)}s`;
}

function main() {
  const args = process.argv.slice(2);
  const flags = new Set(args.filter((a) => a.startsWith("--")));
  const filters = args.filter((a) => !a.startsWith("--")).map((a) => new RegExp(a));
  const all = catalogue();
  const selected = all.filter((b) => filters.length === 0 || filters.some((re) => re.test(b.name)));
  const invalid = selected.filter((b) => b.problems.length);
  for (const b of invalid) console.log(`INVALID  ${b.name} (${b.source}): ${b.problems.join("; ")}`);
  if (flags.has("--list")) {
    for (const b of selected) console.log(`${b.name}\t${b.file}\t${b.caughtBy}`);
    return process.exit(invalid.length ? 1 : 0);
  }
  if (flags.has("--check")) {
    console.log(`${selected.length - invalid.length} of ${selected.length} breaks apply cleanly`);
    return process.exit(invalid.length ? 1 : 0);
  }

  seedTarget();
  mkdirSync(logs, { recursive: true });
  syncTree(flags.has("--committed"));
  const baseLog = join(logs, "_baseline.log");
  writeFileSync(baseLog, "");
  console.log(`scratch tree ${tree}; logs in ${logs}`);
  if (!run(baseLog, "cargo", ["build", "-p", "bridge"])) {
    console.log(`the unbroken tree does not build: see ${baseLog}`);
    return process.exit(1);
  }
  const valid = selected.filter((b) => !b.problems.length);
  // Each shortcut must pass on the unbroken build, or its failure would prove nothing.
  const hintPasses = new Map();
  for (const spec of flags.has("--full") ? [] : new Set(valid.map((b) => b.caughtBy))) {
    const t = target(spec);
    hintPasses.set(spec, outcome(baseLog, t.cmd, t.args, t.cwd, true) === "pass");
    if (!hintPasses.get(spec)) console.log(`note     "${spec}" fails or runs no test without any break (see ${baseLog}); not used as a shortcut`);
  }
  const survived = [];
  for (const b of valid) {
    const start = Date.now();
    const log = join(logs, `${b.name}.log`);
    writeFileSync(log, `${b.name}: ${b.file}\n`);
    const path = join(tree, b.file);
    const pristine = readFileSync(path, "utf8");
    if (pristine.split(b.find).length !== 2) {
      console.log(`INVALID  ${b.name}: its find text does not occur exactly once in the scratch copy of ${b.file}`);
      survived.push(b.name);
      continue;
    }
    writeFileSync(path, pristine.replace(b.find, () => b.replace));
    try {
      if (!run(log, "cargo", ["build", "-p", "bridge"])) {
        console.log(`INVALID  ${b.name}: does not compile (${log})`);
        survived.push(b.name);
        continue;
      }
      const steps = flags.has("--full") || !hintPasses.get(b.caughtBy) ? fullOrder() : [target(b.caughtBy), ...fullOrder()];
      let verdict = null;
      for (const step of steps) {
        const result = outcome(log, step.cmd, step.args, step.cwd);
        if (result !== "pass") {
          verdict = { result, step };
          break;
        }
      }
      if (verdict?.result === "fail") console.log(`caught   ${b.name} by ${verdict.step.label} (${secondsSince(start)})`);
      else if (verdict) {
        console.log(`INVALID  ${b.name}: ${verdict.step.label} did not run to a test failure (see ${log})`);
        survived.push(b.name);
      } else {
        console.log(`SURVIVED ${b.name}: no test failed (${secondsSince(start)}; ${log})`);
        survived.push(b.name);
      }
    } finally {
      writeFileSync(path, pristine);
    }
  }
  const checked = selected.length - invalid.length;
  console.log(`${checked - survived.length} of ${selected.length} breaks caught` + (survived.length || invalid.length ? `; not caught or invalid: ${[...invalid.map((b) => b.name), ...survived].join(", ")}` : ""));
  process.exit(survived.length || invalid.length ? 1 : 0);
}

main();
