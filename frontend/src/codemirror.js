// The code editor: CodeMirror 6, a light and a dark theme. Which mode a language uses comes
// from its file under languages/ (served in the page's config); these are the modes there are.
import { indentWithTab } from "@codemirror/commands";
import { cpp } from "@codemirror/lang-cpp";
import { go } from "@codemirror/lang-go";
import { java } from "@codemirror/lang-java";
import { javascript } from "@codemirror/lang-javascript";
import { php } from "@codemirror/lang-php";
import { python } from "@codemirror/lang-python";
import { rust } from "@codemirror/lang-rust";
import { StreamLanguage } from "@codemirror/language";
import { lua } from "@codemirror/legacy-modes/mode/lua";
import { perl } from "@codemirror/legacy-modes/mode/perl";
import { ruby } from "@codemirror/legacy-modes/mode/ruby";
import { shell } from "@codemirror/legacy-modes/mode/shell";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import { oneDark } from "@codemirror/theme-one-dark";
import { EditorView, keymap } from "@codemirror/view";
import { basicSetup } from "codemirror";

const MODES = {
  python: () => python(),
  javascript: () => javascript(),
  typescript: () => javascript({ typescript: true }),
  shell: () => StreamLanguage.define(shell),
  ruby: () => StreamLanguage.define(ruby),
  php: () => php(),
  lua: () => StreamLanguage.define(lua),
  perl: () => StreamLanguage.define(perl),
  cpp: () => cpp(),
  java: () => java(),
  go: () => go(),
  rust: () => rust(),
};
const plain = () => [];

// The page's languages: name -> mode, from the config the server put in the page.
function modeOf(language, modes) {
  return (MODES[modes[language]] || plain)();
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
        mode.of(modeOf(language, modes)),
        theme.of(dark ? oneDark : []),
        EditorState.readOnly.of(readOnly),
        EditorView.contentAttributes.of({ "aria-label": label }),
      ],
    }),
  });
  return {
    view,
    getCode: () => view.state.doc.toString(),
    setCode(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    setLanguage(name) {
      view.dispatch({ effects: mode.reconfigure(modeOf(name, modes)) });
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
