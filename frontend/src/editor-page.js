// The editor page at / and /s/<id>.
import { createEditor, followColorScheme } from "./codemirror.js";
import { attachRunner, runRequest } from "./session.js";
import { attachTests } from "./tests-panel.js";

const config = JSON.parse(document.getElementById("page-config").textContent);
const modes = Object.fromEntries(config.languages.map((l) => [l.name, l.mode]));
const examples = Object.fromEntries(config.languages.map((l) => [l.name, l.example]));
const $ = (id) => document.getElementById(id);
const language = $("language");
const stdin = $("stdin");
const start = config.snippet || { language: "python", code: examples.python, stdin: "", tests: [] };

language.value = start.language;
stdin.value = start.stdin;
const about = Object.fromEntries(config.languages.map((l) => [l.name, l]));
// The language's real version, and the libraries it offers (Python's data stack).
function showRuntime() {
  const lang = about[language.value];
  $("runtime").textContent = lang ? lang.runtime : "";
  $("runtime").title = lang && lang.libraries.length ? `Libraries: ${lang.libraries.join(", ")}` : "";
  if (lang && lang.libraries.length) $("runtime").textContent += ` · with ${lang.libraries.map((l) => l.split(" ")[0]).join(", ")}`;
}
showRuntime();
let runner;
const editor = createEditor($("editor"), { language: start.language, modes, doc: start.code, onRun: () => runner.run() });
followColorScheme((dark) => editor.setDark(dark));

runner = attachRunner({
  base: location.origin,
  button: $("run"),
  output: $("output"),
  prompt: $("prompt"),
  getRequest: () => runRequest(language.value, editor.getCode(), stdin.value),
});

// Test cases run through the same websocket; the Output panel shows the compile and the summary.
const tests = attachTests({
  base: location.origin,
  list: $("tests"),
  addButton: $("add-test"),
  runButton: $("run-tests"),
  summary: $("tests-summary"),
  output: $("output"),
  cases: start.tests || [],
  getRequest: () => ({ language: language.value, code: editor.getCode() }),
});

language.addEventListener("change", () => {
  editor.setLanguage(language.value);
  editor.setCode(examples[language.value]);
  showRuntime();
});

document.addEventListener("keydown", (event) => {
  const inEditor = editor.view.dom.contains(event.target); // the editor has its own binding
  if ((event.ctrlKey || event.metaKey) && event.key === "Enter" && !inEditor) {
    event.preventDefault();
    runner.run();
  }
});

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = Object.assign(document.createElement("textarea"), { value: text });
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  const label = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => (button.textContent = label), 1500);
}

$("share").addEventListener("click", async () => {
  const status = $("share-status");
  status.textContent = "Saving…";
  try {
    const response = await fetch("/api/snippets", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ language: language.value, code: editor.getCode(), stdin: stdin.value, tests: tests.cases() }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    $("share-link").value = body.url;
    $("embed-code").value = `<iframe src="${body.embedUrl}" width="100%" height="320" style="border:0" loading="lazy" title="Runnable code"></iframe>`;
    $("share-panel").hidden = false;
    status.textContent = "";
    history.replaceState(null, "", `/s/${body.id}`);
  } catch (e) {
    status.textContent = `Could not share: ${e.message}`;
  }
});
$("copy-link").addEventListener("click", (e) => copy($("share-link").value, e.currentTarget));
$("copy-embed").addEventListener("click", (e) => copy($("embed-code").value, e.currentTarget));
