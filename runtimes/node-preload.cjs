// Loaded before every JavaScript and TypeScript program (node --require).
"use strict";

// Node writes to pipes asynchronously: when the reader is slower than the
// program, unwritten output piles up in the program's memory until the kernel
// kills it for memory. Blocking writes make a fast writer wait for the pipe
// instead, so endless output meets the output cap, as it would from a file.
for (const stream of [process.stdout, process.stderr]) {
  if (stream._handle && typeof stream._handle.setBlocking === "function") {
    stream._handle.setBlocking(true);
  }
}

// A program that ends by itself ends as one that calls process.exit() does: once the "exit"
// event's listeners have run, process.reallyExit, with the same exit code. Node's own teardown
// after that event (its environment, V8's isolate and platform threads) shows a program nothing,
// its output being written by then (above), and costs a short run a millisecond. Not after an
// uncaught exception or rejection, whose report Node prints after the "exit" event (Node emits
// "uncaughtExceptionMonitor" for each one first); not for an "exit" a program emits itself
// (Node sets process._exiting before its own); and not in a worker thread.
if (require("worker_threads").isMainThread) {
  const emit = process.emit;
  let uncaught = false;
  process.emit = function (event) {
    if (event === "uncaughtExceptionMonitor") uncaught = true;
    const listened = emit.apply(this, arguments);
    if (event === "exit" && this === process && process._exiting && !uncaught) {
      process.reallyExit(process.exitCode || 0);
    }
    return listened;
  };
}
