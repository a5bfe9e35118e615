// The TypeScript build service: one long-lived esbuild, in a sandbox of its own, that builds
// every TypeScript run's files into the JavaScript a pooled Node sandbox then runs
// (engine/transpile.py). It sees every program's TypeScript source, runs none of it, and keeps
// nothing between two builds: each build's files are written into the empty working directory
// (/tmp, where the run will find them too, so paths in the output are the run's), and the
// directory is emptied again once the answer is written.
//
//   node ts-service.cjs ESBUILD_API ESBUILD POOL_LOADER
//
// A request is a hand-over (sandbox/handover.py): an 8-byte big-endian length, then the files
// and (unused) arguments. The answer is an 8-byte big-endian length, then JSON:
//   {"kind": "esm" | "cjs" | null, "output": base64 | null, "log": "esbuild's messages"}
// `output` is null when the build failed; `log` holds what esbuild would have printed.
// EOF on stdin: the server is gone; exit.
"use strict";
const fs = require("fs");
const path = require("path");

const [api, binary, loader] = process.argv.slice(2);
process.env.ESBUILD_BINARY_PATH = binary;
const esbuild = require(api);
const { readExact, parseRun } = require(loader); // the hand-over, read as the pool's loaders read it
const WORKDIR = "/tmp";

function empty() {
  for (const name of fs.readdirSync(WORKDIR)) fs.rmSync(path.join(WORKDIR, name), { recursive: true, force: true });
}

function place(files) {
  for (const [name, content] of files) {
    const where = path.resolve(WORKDIR, name);
    if (!where.startsWith(WORKDIR + "/")) throw new Error(`bad file name ${name}`);
    fs.mkdirSync(path.dirname(where), { recursive: true });
    fs.writeFileSync(where, content);
  }
}

function write(answer) {
  const body = Buffer.from(JSON.stringify(answer));
  const head = Buffer.alloc(8);
  head.writeBigUInt64BE(BigInt(body.length));
  fs.writeSync(1, head);
  let offset = 0;
  while (offset < body.length) offset += fs.writeSync(1, body, offset);
}

// The build a TypeScript run always had (runtimes/pool-loader.cjs ran it in the run's own
// sandbox before): main.ts bundled into one file, targeting the Node that runs it, with
// `require` in both module kinds, an inline source map relative to /tmp/.main.js.
function options() {
  const entry = "main.ts";
  const base = JSON.stringify(path.resolve(WORKDIR, entry));
  return {
    entryPoints: [entry],
    absWorkingDir: WORKDIR,
    bundle: true,
    platform: "node",
    target: `node${process.versions.node}`,
    format: "esm",
    sourcemap: "inline",
    logLevel: "silent",
    banner: { js: `var require = require ?? process.getBuiltinModule("module").createRequire(${base});` },
    outfile: ".main.js",
    metafile: true,
    write: false,
  };
}

// What esbuild would have printed at logLevel "warning": each a round trip to its process, so
// only when there is something to say.
async function log(warnings, errors) {
  const format = (messages, kind) =>
    messages.length ? esbuild.formatMessages(messages, { kind, color: false }) : [];
  return [...(await format(warnings, "warning")), ...(await format(errors, "error"))].join("");
}

async function build() {
  let result;
  try {
    result = await esbuild.build(options());
  } catch (e) {
    if (!e.errors) return { kind: null, output: null, log: `${e.message || e}\n` };
    return { kind: null, output: null, log: await log(e.warnings || [], e.errors) };
  }
  // "esm", "cjs", or none: a plain script, which runs as CommonJS, as plain JavaScript does.
  const kind = result.metafile.inputs["main.ts"]?.format || null;
  const output = Buffer.from(result.outputFiles[0].contents).toString("base64");
  return { kind, output, log: await log(result.warnings, []) };
}

async function serve() {
  // Put esbuild through one build first: its first costs more than later ones.
  empty();
  place([["main.ts", Buffer.from("export const warm: number = 1;\n")]]);
  await build();
  empty();
  for (;;) {
    const { files } = parseRun(readExact(Number(readExact(8).readBigUInt64BE())));
    let answer;
    try {
      place(files);
      answer = await build();
    } catch (e) {
      answer = { kind: null, output: null, log: `the TypeScript build failed: ${e.message}\n` };
    }
    empty();
    write(answer);
  }
}

serve();
