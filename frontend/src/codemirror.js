// The code editor: CodeMirror 6, a light and a dark theme. Which mode a language uses comes
// from its file under languages/ (served in the page's config); these are the modes there are.
import { indentWithTab } from "@codemirror/commands";
import { StreamLanguage } from "@codemirror/language";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import { oneDark } from "@codemirror/theme-one-dark";
import { EditorView, keymap } from "@codemirror/view";
import { basicSetup } from "codemirror";

// Each mode is its own chunk (esbuild's code splitting), loaded the first time a language
// that uses it is shown: a page loads the editor and one mode, not all of them.
const legacy = (mode) => StreamLanguage.define(mode);
const MODES = {
  python: async () => (await import("@codemirror/lang-python")).python(),
  javascript: async () => (await import("@codemirror/lang-javascript")).javascript(),
  typescript: async () => (await import("@codemirror/lang-javascript")).javascript({ typescript: true }),
  shell: async () => legacy((await import("@codemirror/legacy-modes/mode/shell")).shell),
  ruby: async () => legacy((await import("@codemirror/legacy-modes/mode/ruby")).ruby),
  php: async () => (await import("@codemirror/lang-php")).php(),
  lua: async () => legacy((await import("@codemirror/legacy-modes/mode/lua")).lua),
  perl: async () => legacy((await import("@codemirror/legacy-modes/mode/perl")).perl),
  r: async () => legacy((await import("@codemirror/legacy-modes/mode/r")).r),
  cpp: async () => (await import("@codemirror/lang-cpp")).cpp(),
  java: async () => (await import("@codemirror/lang-java")).java(),
  go: async () => (await import("@codemirror/lang-go")).go(),
  rust: async () => (await import("@codemirror/lang-rust")).rust(),
};

// The page's languages: name -> mode, from the config the server put in the page. A mode that
// fails to load (the network) leaves plain text: the editor works without highlighting.
async function modeOf(language, modes) {
  const load = MODES[modes[language]];
  if (!load) return [];
  try {
    return await load();
  } catch (error) {
    console.error(`the ${language} editor mode did not load`, error);
    return [];
  }
}

export function createEditor(
  parent,
  { language, modes, doc = "", dark = false, readOnly = false, onRun, label = "Code" },
) {
  const mode = new Compartment();
  const theme = new Compartment();
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        Prec.highest(keymap.of([{ key: "Mod-Enter", run: () => (onRun(), true) }])),
        basicSetup,
        keymap.of([indentWithTab]),
        mode.of([]),
        theme.of(dark ? oneDark : []),
        EditorState.readOnly.of(readOnly),
        EditorView.contentAttributes.of({ "aria-label": label }),
      ],
    }),
  });
  // Only the latest language asked for is applied: a slower mode loading after a quicker one
  // must not replace it.
  let wanted = null;
  const apply = async (name) => {
    wanted = name;
    const extension = await modeOf(name, modes);
    if (wanted === name) view.dispatch({ effects: mode.reconfigure(extension) });
  };
  apply(language);
  return {
    view,
    getCode: () => view.state.doc.toString(),
    setCode(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    setLanguage(name) {
      return apply(name);
    },
    setDark(on) {
      view.dispatch({ effects: theme.reconfigure(on ? oneDark : []) });
    },
  };
}

// Follow the system's light or dark preference, now and when it changes.
export function followColorScheme(apply) {
  const query = window.matchMedia("(prefers-color-scheme: dark)");
  apply(query.matches);
  query.addEventListener("change", (event) => apply(event.matches));
}
