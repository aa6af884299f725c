// Page content editor for the admin: upgrades every <textarea data-html-editor> to the vendored Jodit
// WYSIWYG editor, with a "Visual | HTML" switch back to the plain textarea (what the form submits).
//
// Load after vendor/jodit/jodit.min.js and jodit.min.css. Nothing is fetched from the network: Jodit's
// Ace source view, js-beautify, uploader and file browser are all left out. The server sanitizes the
// HTML on save either way (app/services/cms.py), so this is convenience, not a security boundary.
(function () {
  "use strict";

  const MODE_KEY = "neurapix.pageEditorMode";

  const CONFIG = {
    height: 460,
    toolbarAdaptive: false,
    toolbarSticky: false,
    buttons: [
      "paragraph", "bold", "italic", "underline", "strikethrough", "superscript", "subscript", "|",
      "ul", "ol", "outdent", "indent", "align", "|",
      "link", "image", "table", "hr", "|",
      "brush", "eraser", "|", "undo", "redo", "fullsize",
    ],
    disablePlugins: ["about", "ai-assistant", "file", "video", "media", "iframe", "print", "preview", "source",
                     "speech-recognize", "spellcheck", "stat", "xpath", "poweredByJodit", "powered-by-jodit"],
    hidePoweredByJodit: true,
    showCharsCounter: false,
    showWordsCounter: false,
    showXPathInStatusbar: false,
    beautifyHTML: false,
    sourceEditor: "area",
    askBeforePasteHTML: false,
    askBeforePasteFromWord: false,
    defaultActionOnPaste: "insert_clear_html",
    uploader: { insertImageAsBase64URI: false },
    enableDragAndDropFileToEditor: false,
    link: { noFollowCheckbox: false, openInNewTabCheckbox: true },
    spellcheck: true,
  };

  function preferredMode() {
    try { return window.localStorage.getItem(MODE_KEY) === "html" ? "html" : "visual"; } catch (e) { return "visual"; }
  }

  function rememberMode(mode) {
    try { window.localStorage.setItem(MODE_KEY, mode); } catch (e) { /* private mode: just don't remember */ }
  }

  function upgrade(textarea) {
    const bar = document.createElement("div");
    bar.className = "btn-group btn-group-sm page-editor-modes mb-2";
    bar.setAttribute("role", "group");
    bar.setAttribute("aria-label", "Editing mode");
    const buttons = {};
    for (const [mode, label] of [["visual", "Visual"], ["html", "HTML"]]) {
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "btn btn-outline-secondary";
      btn.textContent = label;
      btn.dataset.mode = mode;
      btn.addEventListener("click", () => { setMode(mode); rememberMode(mode); });
      bar.appendChild(btn);
      buttons[mode] = btn;
    }
    textarea.parentNode.insertBefore(bar, textarea);
    textarea.classList.add("page-editor-source");

    let editor = null;
    function setMode(mode) {
      if (mode === "visual" && !editor) {
        editor = window.Jodit.make(textarea, CONFIG);
      } else if (mode === "html" && editor) {
        textarea.value = editor.value; // the textarea is what the form sends
        editor.destruct();
        editor = null;
        textarea.style.display = "";
      }
      for (const [name, btn] of Object.entries(buttons)) {
        btn.classList.toggle("active", name === mode);
        btn.setAttribute("aria-pressed", String(name === mode));
      }
      textarea.closest("form").dataset.editorMode = mode;
    }

    textarea.form.addEventListener("submit", () => { if (editor) textarea.value = editor.value; });
    setMode(window.Jodit ? preferredMode() : "html");
    if (!window.Jodit) buttons.visual.disabled = true;
  }

  function init() {
    document.querySelectorAll("textarea[data-html-editor]").forEach(upgrade);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
