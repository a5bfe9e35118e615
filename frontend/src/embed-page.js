// /embed/<id>: the compact page made for iframes.
import { createEditor, followColorScheme } from "./codemirror.js";
import { attachRunner, runRequest } from "./session.js";
import { attachTests } from "./tests-panel.js";

const config = JSON.parse(document.getElementById("page-config").textContent);
const modes = Object.fromEntries(config.languages.map((l) => [l.name, l.mode]));
const snippet = config.snippet;
const $ = (id) => document.getElementById(id);
let runner;
const editor = createEditor($("editor"), {
  language: snippet.language,
  modes,
  doc: snippet.code,
  readOnly: config.readonly,
  onRun: () => runner.run(),
});
if (config.theme) {
  document.documentElement.dataset.theme = config.theme;
  editor.setDark(config.theme === "dark");
} else {
  followColorScheme((dark) => editor.setDark(dark));
}
runner = attachRunner({
  base: location.origin,
  button: $("run"),
  output: $("output"),
  prompt: $("prompt"),
  getRequest: () => runRequest(snippet.language, editor.getCode(), snippet.stdin),
});

// A snippet's test cases, shown read-only, run against the code as it is in the editor.
if (snippet.tests && snippet.tests.length) {
  attachTests({
    base: location.origin,
    list: $("tests"),
    runButton: $("run-tests"),
    summary: $("tests-summary"),
    output: $("output"),
    cases: snippet.tests,
    readOnly: true,
    getRequest: () => ({ language: snippet.language, code: editor.getCode() }),
  });
}

// Tell the host page our height, so it can size the frame.
let lastHeight = 0;
new ResizeObserver(() => {
  const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
  if (height !== lastHeight && window.parent !== window) {
    lastHeight = height;
    window.parent.postMessage({ type: "playground:height", id: snippet.id, height }, "*");
  }
}).observe(document.body);
