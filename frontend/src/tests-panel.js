// The Tests panel: test cases (input and expected output), run against the program on the
// server, with a mark per case as its verdict comes in and, for a wrong answer, where the
// output first differs. Read-only on the embed page. Text from the server is only ever
// inserted as text, never as HTML.
import { startRun } from "./client.js";
import { OutputView } from "./output.js";

const VERDICTS = {
  passed: ["✓", "passed"],
  wrong_answer: ["✗", "wrong answer"],
  timeout: ["✗", "timed out"],
  memory: ["✗", "out of memory"],
  output_limit: ["✗", "output limit"],
  error: ["✗", "error"],
  compile_error: ["✗", "compile error"],
  skipped: ["–", "skipped"],
};

function shown(text) {
  return text === null || text === undefined ? "(nothing)" : JSON.stringify(text);
}

export function attachTests({ base, list, addButton, runButton, summary, output, getRequest, cases = [], readOnly = false, doc = document }) {
  const view = new OutputView(output, doc);
  let current = null;
  const rows = [];

  function el(tag, className, text) {
    const node = doc.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renumber() {
    rows.forEach((row, i) => {
      row.name.textContent = row.given.name || `Test ${i + 1}`;
      if (row.remove) row.remove.setAttribute("aria-label", `Remove test ${i + 1}`);
      row.stdin.setAttribute("aria-label", `Test ${i + 1} input`);
      row.expected.setAttribute("aria-label", `Test ${i + 1} expected output`);
    });
    runButton.disabled = !current && rows.length === 0;
  }

  function field(row, label, value, className) {
    const wrap = el("label", "test-field");
    const caption = el("span", null, label);
    const area = el("textarea", className);
    area.value = value || "";
    area.spellcheck = false;
    area.rows = 2;
    area.readOnly = readOnly;
    wrap.append(caption, area);
    row.fields.append(wrap);
    return area;
  }

  function add(given = {}) {
    const row = { given };
    row.item = el("li", "test");
    const head = el("div", "test-head");
    row.mark = el("span", "test-mark", "•");
    row.mark.setAttribute("aria-hidden", "true");
    row.name = el("span", "test-name");
    row.status = el("span", "test-status");
    head.append(row.mark, row.name, row.status);
    if (!readOnly) {
      row.remove = el("button", "test-remove", "×");
      row.remove.type = "button";
      row.remove.addEventListener("click", () => {
        rows.splice(rows.indexOf(row), 1);
        row.item.remove();
        renumber();
      });
      head.append(row.remove);
    }
    row.fields = el("div", "test-fields");
    row.stdin = field(row, "Input", given.stdin, "test-stdin");
    row.expected = field(row, "Expected output", given.expectedOutput, "test-expected");
    row.detail = el("div", "test-detail");
    row.detail.hidden = true;
    row.item.append(head, row.fields, row.detail);
    list.append(row.item);
    rows.push(row);
    renumber();
    return row;
  }

  function clearMarks() {
    for (const row of rows) {
      row.item.dataset.state = "";
      row.mark.textContent = "•";
      row.status.textContent = "";
      row.detail.hidden = true;
      row.detail.replaceChildren();
    }
  }

  function show(result) {
    const row = rows[result.index];
    if (!row) return;
    const [mark, words] = VERDICTS[result.status] || ["?", result.status];
    row.item.dataset.state = result.status;
    row.mark.textContent = mark;
    row.status.textContent = result.status === "skipped" || result.status === "compile_error" ? words : `${words} · ${result.duration} ms`;
    row.detail.replaceChildren();
    if (result.difference) {
      const d = result.difference;
      const where = d.token ? `line ${d.line}, token ${d.token}` : `line ${d.line}`;
      row.detail.append(el("div", "test-diff", `First difference at ${where}: expected ${shown(d.expected)}, got ${shown(d.got)}`));
    }
    if (result.error) row.detail.append(el("div", "test-diff", result.error));
    if (result.status !== "passed" && result.status !== "skipped" && result.status !== "compile_error") {
      if (result.stdout) row.detail.append(el("pre", "test-out", result.stdout));
      if (result.stderr) row.detail.append(el("pre", "test-out pg-stderr", result.stderr));
    }
    row.detail.hidden = row.detail.childElementCount === 0;
  }

  // While the cases run, their list stays as sent: verdicts come back by each case's place.
  function showRunning(on) {
    runButton.textContent = on ? "Stop" : "Test";
    runButton.classList.toggle("pg-running", on);
    runButton.disabled = !on && rows.length === 0;
    if (addButton) addButton.disabled = on;
    for (const row of rows) if (row.remove) row.remove.disabled = on;
  }

  function run() {
    if (current) {
      current.kill();
      return;
    }
    if (!rows.length) return;
    clearMarks();
    summary.textContent = "Running…";
    view.reset();
    const request = { ...getRequest(), tests: casesOf() };
    const done = () => {
      current = null;
      showRunning(false);
    };
    current = startRun(base, request, {
      started() {},
      output: (stream, text, stage) => view.append(stream, text, stage),
      test: show,
      exit: (result) => {
        for (const test of result.tests || []) show(test); // (over HTTP, they come at the end)
        const s = result.summary;
        summary.textContent = s ? `${s.passed} of ${s.total} passed` : "";
        summary.dataset.state = result.status;
        view.finish(result);
        done();
      },
      error: (message) => {
        summary.textContent = "";
        view.error(message);
        done();
      },
    });
    showRunning(true);
  }

  // The cases as POST /api/execute takes them; an empty expected output means "judge by the exit".
  function casesOf() {
    return rows.map((row) => {
      const test = { stdin: row.stdin.value };
      if (row.given.name) test.name = row.given.name;
      if (row.expected.value !== "") test.expectedOutput = row.expected.value;
      return test;
    });
  }

  for (const given of cases) add(given);
  if (addButton && !readOnly) addButton.addEventListener("click", () => add().stdin.focus());
  runButton.addEventListener("click", run);
  showRunning(false);
  return { run, add, cases: casesOf };
}
