// Wires a Run button, an Output panel and a prompt line to runs on the server.
import { startRun } from "./client.js";
import { OutputView } from "./output.js";

// Given input is the whole of stdin; without any, the program's input is typed live.
export function runRequest(language, code, stdin = "") {
  return stdin ? { language, code, stdin } : { language, code, interactive: true };
}

export function attachRunner({ base, button, output, prompt, getRequest, doc = document }) {
  const view = new OutputView(output, doc);
  let current = null;

  function showRunning(on) {
    button.textContent = on ? "Stop" : "Run";
    button.classList.toggle("pg-running", on);
    output.setAttribute("aria-busy", on ? "true" : "false");
    if (prompt) prompt.hidden = !(on && current && current.interactive);
  }

  function done() {
    current = null;
    showRunning(false);
  }

  function run() {
    if (current) {
      current.kill(); // Run is Stop while a run is going
      return;
    }
    view.reset();
    current = startRun(base, getRequest(), {
      started() {},
      output: (stream, text, stage) => view.append(stream, text, stage),
      exit: (result) => {
        view.finish(result);
        done();
      },
      error: (message) => {
        view.error(message);
        done();
      },
    });
    showRunning(true);
  }

  if (prompt) {
    prompt.addEventListener("keydown", (event) => {
      if (!current) return;
      if (event.key === "Enter") {
        event.preventDefault();
        const line = `${prompt.value}\n`;
        view.append("stdin", line); // echo what was typed, as a terminal would
        current.sendStdin(line);
        prompt.value = "";
      } else if (event.key === "d" && event.ctrlKey) {
        event.preventDefault();
        current.eof();
        prompt.hidden = true;
      }
    });
    // Typing into the Output area goes to the prompt line.
    output.addEventListener("keydown", (event) => {
      if (current && current.interactive && event.key.length === 1 && !event.ctrlKey && !event.metaKey) {
        prompt.hidden = false;
        prompt.focus();
      }
    });
  }
  button.addEventListener("click", run);
  return { run, view };
}
