// The Output panel: stdout and stderr told apart, then the exit code, duration and badges.
// Program output is only ever inserted as text, never as HTML.

const BADGES = {
  timeout: "timed out",
  memory: "out of memory",
  output_limit: "output limit",
  killed: "stopped",
  compile_error: "compile error",
  failed: "tests failed",
};

export class OutputView {
  constructor(root, doc = document) {
    this.root = root;
    this.doc = doc;
  }

  reset(message = "") {
    this.root.replaceChildren();
    this.last = null;
    if (message) this.note(message);
  }

  // A compiler's output (stage "compile") is shown apart from the program's.
  append(stream, text, stage) {
    const kind = stage ? `${stage}-${stream}` : stream;
    if (!this.last || this.last.dataset.stream !== kind) {
      this.last = this.doc.createElement("span");
      this.last.className = stage ? `pg-${stream} pg-compile` : `pg-${stream}`;
      this.last.dataset.stream = kind;
      this.root.append(this.last);
    }
    this.last.textContent += text;
    this.root.scrollTop = this.root.scrollHeight;
  }

  note(text, kind = "note") {
    const line = this.doc.createElement("div");
    line.className = `pg-${kind}`;
    line.textContent = text;
    this.root.append(line);
    this.last = null;
    return line;
  }

  finish(result) {
    const line = this.note("", "status");
    const parts = [];
    if (result.compile) parts.push(`compiled in ${result.compile.duration} ms`);
    if (result.status === "compile_error") parts.push("nothing ran");
    else if (result.summary) parts.push(`${result.summary.passed} of ${result.summary.total} tests passed`);
    else if (result.signal) parts.push(`killed by ${result.signal}`);
    else if (result.exitCode !== null && result.exitCode !== undefined) parts.push(`exit code ${result.exitCode}`);
    if (result.status !== "compile_error") parts.push(`${result.duration} ms`);
    line.append(parts.join(" · "));
    const badges = [];
    if (BADGES[result.status]) badges.push(BADGES[result.status]);
    if (result.truncated && result.status !== "output_limit") badges.push("truncated");
    if (result.status === "output_limit") badges.push("truncated");
    for (const text of new Set(badges)) {
      const badge = this.doc.createElement("span");
      badge.className = `pg-badge pg-badge-${result.status}`;
      badge.textContent = text;
      line.append(" ", badge);
    }
  }

  error(message) {
    this.note(message, "error");
  }
}
