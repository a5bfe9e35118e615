// embed.js: one script tag makes every <pre data-run="LANGUAGE"> on a page runnable.
// Each widget lives in a shadow root, so it styles only its own elements and the
// host page's styles don't reach it. It talks to the server that served this script.
import { attachRunner, runRequest } from "./session.js";

const STYLE = `
:host { display: block; margin: 1em 0; }
.pg { --bg: #fafafa; --fg: #1f2328; --line: #d0d7de; --err: #b42318; --accent: #0b5fff; --muted: #57606a;
  font: 14px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--fg);
  border: 1px solid var(--line); border-radius: 6px; background: var(--bg); overflow: hidden; }
@media (prefers-color-scheme: dark) {
  .pg { --bg: #0d1117; --fg: #e6edf3; --line: #30363d; --err: #ff7b72; --accent: #4493f8; --muted: #8d96a0; }
}
textarea { box-sizing: border-box; display: block; width: 100%; min-height: 3em; margin: 0; padding: 10px 12px;
  border: 0; border-bottom: 1px solid var(--line); background: transparent; color: inherit; font: inherit;
  resize: vertical; tab-size: 4; white-space: pre; overflow: auto; }
textarea:focus-visible, button:focus-visible, .pg-out:focus-visible, input:focus-visible { outline: 2px solid var(--accent); outline-offset: -2px; }
.pg-bar { display: flex; align-items: center; gap: 8px; padding: 6px 8px; border-bottom: 1px solid var(--line); }
button { font: 600 13px system-ui, sans-serif; padding: 4px 14px; border-radius: 6px; border: 1px solid transparent;
  background: var(--accent); color: #fff; cursor: pointer; }
button.pg-running { background: var(--err); }
.pg-lang { color: var(--muted); font: 12px system-ui, sans-serif; }
.pg-out { margin: 0; padding: 8px 12px; white-space: pre-wrap; overflow-wrap: anywhere; max-height: 20em; overflow: auto; min-height: 1.5em; }
.pg-out:empty::before { content: "Output appears here"; color: var(--muted); font-family: system-ui, sans-serif; }
.pg-stderr, .pg-error { color: var(--err); }
.pg-stdin { color: var(--accent); }
.pg-status { color: var(--muted); font: 12px system-ui, sans-serif; margin-top: 4px; }
.pg-badge { display: inline-block; padding: 0 6px; border-radius: 9px; border: 1px solid currentColor; }
input { box-sizing: border-box; width: 100%; border: 0; border-top: 1px solid var(--line); padding: 6px 12px;
  background: transparent; color: inherit; font: inherit; }
`;

const base = new URL(document.currentScript.src).origin;

function widget(pre) {
  const language = pre.dataset.run;
  const host = document.createElement("div");
  host.className = "playground-widget";
  const shadow = host.attachShadow({ mode: "open" });
  shadow.innerHTML = `<style>${STYLE}</style><div class="pg">
    <textarea aria-label="Code" spellcheck="false" autocapitalize="off"></textarea>
    <div class="pg-bar"><button type="button">Run</button><span class="pg-lang"></span></div>
    <div class="pg-out" role="log" aria-live="polite" aria-label="Output" tabindex="0"></div>
    <input class="pg-prompt" aria-label="Program input" placeholder="Type input, then Enter" hidden>
  </div>`;
  const code = shadow.querySelector("textarea");
  code.value = pre.textContent.replace(/\n$/, "");
  code.rows = Math.min(code.value.split("\n").length + 1, 30);
  shadow.querySelector(".pg-lang").textContent = language;
  const runner = attachRunner({
    base,
    button: shadow.querySelector("button"),
    output: shadow.querySelector(".pg-out"),
    prompt: shadow.querySelector("input"),
    getRequest: () => runRequest(language, code.value),
  });
  code.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      event.preventDefault();
      runner.run();
    }
  });
  pre.replaceWith(host);
}

function init() {
  document.querySelectorAll("pre[data-run]").forEach(widget);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
