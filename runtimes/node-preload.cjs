// Loaded before every JavaScript and TypeScript program (node --require).
// Node writes to pipes asynchronously: when the reader is slower than the
// program, unwritten output piles up in the program's memory until the kernel
// kills it for memory. Blocking writes make a fast writer wait for the pipe
// instead, so endless output meets the output cap, as it would from a file.
for (const stream of [process.stdout, process.stderr]) {
  if (stream._handle && typeof stream._handle.setBlocking === "function") {
    stream._handle.setBlocking(true);
  }
}
