// A pre-warmed sandbox's first program for JavaScript and TypeScript: waits for one run
// on stdin, then becomes it.
//
//   node [flags] pool-loader.cjs main.js
//   node [flags] pool-loader.cjs main.ts ESBUILD OUTFILE [esbuild flags...]
//
// The server writes an 8-byte big-endian length and that many bytes of JSON,
// {"files": {name: content}, "args": [...]}, then the program's own stdin, which this
// loader leaves unread. EOF before a run means the server is gone: exit quietly.
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

const size = Number(readExact(8).readBigUInt64BE());
const run = JSON.parse(readExact(size).toString("utf8"));
for (const [name, content] of Object.entries(run.files)) {
  fs.mkdirSync(path.dirname(path.resolve(name)), { recursive: true });
  fs.writeFileSync(name, content);
}

let main = process.argv[2];
if (main.endsWith(".ts")) {
  const [esbuild, outfile, ...flags] = process.argv.slice(3);
  const built = require("child_process").spawnSync(esbuild, [main, ...flags, `--outfile=${outfile}`], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (built.status !== 0) process.exit(built.status === null ? 1 : built.status);
  main = outfile;
}
process.argv = [process.argv[0], path.resolve(main), ...run.args];
require("module").runMain();
