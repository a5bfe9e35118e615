// Runs code on the server that served this script: streamed over the websocket,
// or, where websockets are unavailable, through POST /api/execute.

export function socketUrl(base) {
  const url = new URL("/ws/execute", base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

// request: the fields of POST /api/execute, plus interactive.
// on: { started(id), output(stream, text, stage), test(case), exit(result), error(message) };
// stage is "compile" for a compiler's output, else undefined; test(case) is a test case's
// result as soon as it is judged (a run with tests).
// Returns a handle: sendStdin(text), eof(), kill(), and interactive (false after a fallback).
export function startRun(base, request, on) {
  let socket = null;
  let opened = false;
  let ended = false;
  let abort = null;
  const finish = (fn, value) => {
    if (!ended) {
      ended = true;
      fn(value);
    }
  };
  const handle = {
    interactive: Boolean(request.interactive),
    sendStdin(text) {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "stdin", data: text }));
    },
    eof() {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "eof" }));
    },
    kill() {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "kill" }));
      else if (abort) abort.abort();
    },
  };

  async function overHttp() {
    handle.interactive = false;
    abort = new AbortController();
    const { interactive, ...body } = request;
    try {
      const response = await fetch(new URL("/api/execute", base), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal: abort.signal,
      });
      const result = await response.json();
      if (!response.ok) return finish(on.error, result.error || `HTTP ${response.status}`);
      on.started(result.id);
      if (result.compile && result.compile.stdout) on.output("stdout", result.compile.stdout, "compile");
      if (result.compile && result.compile.stderr) on.output("stderr", result.compile.stderr, "compile");
      if (result.stdout) on.output("stdout", result.stdout);
      if (result.stderr) on.output("stderr", result.stderr);
      finish(on.exit, result);
    } catch (e) {
      finish(on.error, e.name === "AbortError" ? "stopped before the server answered" : `cannot reach the server: ${e.message}`);
    }
  }

  if (typeof WebSocket === "undefined") {
    overHttp();
    return handle;
  }
  try {
    socket = new WebSocket(socketUrl(base));
  } catch (e) {
    overHttp();
    return handle;
  }
  socket.onopen = () => {
    opened = true;
    socket.send(JSON.stringify({ type: "run", ...request }));
  };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "started") on.started(message.id);
    else if (message.type === "stdout" || message.type === "stderr") on.output(message.type, message.data, message.stage);
    else if (message.type === "test") on.test && on.test(message);
    else if (message.type === "exit") finish(on.exit, message);
    else if (message.type === "error") finish(on.error, message.error);
  };
  socket.onclose = () => {
    if (!opened) overHttp(); // no websocket to be had here: fall back to one request
    else finish(on.error, "the connection to the server was lost");
  };
  return handle;
}
