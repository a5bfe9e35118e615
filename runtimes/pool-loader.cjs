// A pre-warmed sandbox's first program for JavaScript and TypeScript: waits for one run
// on stdin, then becomes it.
//
//   node [flags] pool-loader.cjs main.js
//   node [flags] pool-loader.cjs main.ts ESBUILD_API ESBUILD OUTFILE
//
// For TypeScript, esbuild's service is started while the sandbox waits, so the run
// only pays for the build itself; it is stopped before the program starts.
//
// The server writes one hand-over (runner/pool.py, handover()): an 8-byte big-endian
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

// Writes the run's files into the working directory; returns its arguments.
function takeRun() {
  const data = readExact(Number(readExact(8).readBigUInt64BE()));
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
  for (let files = number(4); files > 0; files--) {
    const name = chunk(4).toString("utf8");
    const content = chunk(8);
    fs.mkdirSync(path.dirname(path.resolve(name)), { recursive: true });
    fs.writeFileSync(name, content);
  }
  const args = [];
  for (let count = number(4); count > 0; count--) args.push(chunk(4).toString("utf8"));
  return args;
}

async function main() {
  let main = process.argv[2];
  let esbuild = null;
  const [api, binary, outfile] = process.argv.slice(3);
  if (main.endsWith(".ts")) {
    process.env.ESBUILD_BINARY_PATH = binary;
    esbuild = require(api);
    // While the sandbox waits: start esbuild's service and run one small build through it,
    // load Node's ES module loader, and start libuv's thread pool (the first asynchronous
    // file read starts its threads), so that the run pays for none of them.
    await esbuild.build({ stdin: { contents: "export const x: number = 1;", loader: "ts" }, write: false, logLevel: "silent" });
    delete process.env.ESBUILD_BINARY_PATH;
    await import("data:text/javascript,import{createRequire}from'module';export default createRequire");
    await fs.promises.readFile(__filename);
  }
  const args = takeRun();
  if (esbuild) {
    // The same build as the cold path's esbuild command line (runner/languages.py).
    try {
      await esbuild.build({
        entryPoints: [main],
        bundle: true,
        platform: "node",
        format: "esm",
        sourcemap: "inline",
        logLevel: "warning",
        banner: { js: 'import{createRequire as __pgRequire}from"module";const require=__pgRequire(import.meta.url);' },
        outfile,
      });
    } catch {
      esbuild.stop();
      process.exit(1); // esbuild has printed the errors
    }
    // Stopped once the program has started loading: killing the service takes a moment.
    setImmediate(() => esbuild.stop());
    main = outfile;
  }
  process.argv = [process.argv[0], path.resolve(main), ...args];
  require("module").runMain();
}

main();
