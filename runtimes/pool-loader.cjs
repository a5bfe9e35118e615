// Node's first program in a pre-warmed sandbox for JavaScript and TypeScript, and the
// runner of every TypeScript run, cold ones included, so both take the same path:
//
//   node [flags] pool-loader.cjs wait main.js
//   node [flags] pool-loader.cjs now main.ts [ARGS...]
//
// "wait" (a pooled sandbox): start what the run will need, then wait for one run on stdin
// and become it: a JavaScript run, or a TypeScript one, which comes built. "now" (a cold
// TypeScript run): the files are in place; run.
//
// TypeScript comes built, by one esbuild every run shares (runtimes/ts-service.cjs), with its
// files: the bundle runs as CommonJS when main.ts uses no module syntax, as plain JavaScript
// does (languages/javascript.toml), and as an ES module when it does (import, export,
// top-level await, import.meta), or when it assigns CommonJS exports, which esbuild's ES
// module output wraps.
//
// The server writes one hand-over (sandbox/handover.py): an 8-byte big-endian
// length, then that many bytes holding the files and the arguments; then the program's
// own stdin, which this loader leaves unread. EOF before a run means the server is gone:
// exit quietly.
"use strict";
const fs = require("fs");
const path = require("path");

function readExact(n) {
  const buffer = Buffer.alloc(n);
  let offset = 0;
  while (offset < n) {
    let got;
    try {
      got = fs.readSync(0, buffer, offset, n - offset, null);
    } catch (e) {
      if (e.code === "EAGAIN") continue;
      throw e;
    }
    if (got === 0) process.exit(0);
    offset += got;
  }
  return buffer;
}

// A hand-over's body: the run's files, as [name, content] pairs, and its arguments.
function parseRun(data) {
  let at = 0;
  const number = (width) => {
    at += width;
    return width === 4 ? data.readUInt32BE(at - 4) : Number(data.readBigUInt64BE(at - 8));
  };
  const chunk = (width) => {
    const size = number(width);
    at += size;
    return data.subarray(at - size, at);
  };
  const files = [];
  for (let count = number(4); count > 0; count--) files.push([chunk(4).toString("utf8"), chunk(8)]);
  const args = [];
  for (let count = number(4); count > 0; count--) args.push(chunk(4).toString("utf8"));
  return { files, args };
}

function placeFiles(files) {
  for (const [name, content] of files) {
    fs.mkdirSync(path.dirname(path.resolve(name)), { recursive: true });
    fs.writeFileSync(name, content);
  }
}

// A hand-over of one empty file, /dev/null, and one argument: parsed and placed while the
// sandbox waits, it compiles the code a run's own hand-over goes through, and writes nothing
// anywhere.
const SAMPLE_RUN = "00000001000000092f6465762f6e756c6c000000000000000000000001000000047761726d";

// A TypeScript run's files come built (engine/transpile.py: runtimes/ts-service.cjs): the
// bundle is .main.mjs (an ES module) or .main.cjs, and .main.log holds what esbuild said, which
// goes to stderr first, as esbuild itself would have printed it. No bundle: the build failed.
async function builtTypeScript() {
  process.setSourceMapsEnabled(true); // errors point at main.ts lines
  if (fs.existsSync(".main.log")) {
    process.stderr.write(fs.readFileSync(".main.log"));
    fs.unlinkSync(".main.log");
  }
  const entry = [".main.mjs", ".main.cjs"].find((name) => fs.existsSync(name));
  if (!entry) process.exit(1);
  return entry;
}

async function main() {
  const [mode, main] = process.argv.slice(2);
  let typescript = main.endsWith(".ts");
  let args = process.argv.slice(4); // a cold run's own arguments
  if (mode === "wait") {
    // Load Node's ES module loader, and start libuv's thread pool (the first asynchronous
    // file read starts its threads), so that the run pays for neither. (Started threads are
    // joined at exit, about half a millisecond of every run; an ES module's run, which reads
    // its files asynchronously, would pay two to three milliseconds to start them.)
    await import("data:text/javascript,export default 1");
    await fs.promises.readFile(__filename);
    // A process's first console.log compiles Node's formatting and console code, about a
    // millisecond of a one-line program's run: a console writing nowhere pays for it here.
    const { Writable } = require("stream");
    const nowhere = new console.Console(new Writable({ write: (chunk, encoding, done) => done() }));
    nowhere.log("%s", "warm", 1, { a: [1] });
    nowhere.error("warm");
    placeFiles(parseRun(Buffer.from(SAMPLE_RUN, "hex")).files);
    const run = parseRun(readExact(Number(readExact(8).readBigUInt64BE())));
    placeFiles(run.files);
    args = run.args;
    // A TypeScript run, in one of JavaScript's waiting sandboxes: it comes with its build
    // (a request's own files never start with a dot).
    typescript = run.files.some(([name]) => name.startsWith(".main."));
  }
  const entry = typescript ? await builtTypeScript() : main;
  process.argv = [process.argv[0], path.resolve(entry), ...args];
  // The program's module cache holds what a plain `node main.js` would: not this loader.
  delete require.cache[__filename];
  require("module").runMain();
}

// Run as a loader; required (by runtimes/ts-service.cjs), it lends its hand-over reading.
if (require.main === module) main();
else module.exports = { readExact, parseRun };
