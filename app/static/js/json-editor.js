// JSON config editor for Flask-Admin forms: upgrades every <textarea data-json-editor>
// to a CodeMirror 5 editor with live JSON validation and a field table from a JSON Schema.
//
// Load after vendor/codemirror/{codemirror,javascript,matchbrackets,closebrackets}.js
// (in that order) and codemirror.css; jQuery is optional (only to hear Select2's changes).
//
// Textarea attributes:
//   data-json-editor          opt in
//   data-schema="{…}"         JSON Schema (a JSON string) for the docs panel
//   data-schema-source="ID"   id of a <select> whose value picks the schema…
//   data-schemas="{…}"        …from this JSON object {optionValue: schema}
//   data-hide-fields="a,b"    properties never listed nor defaulted (e.g. secrets)
//   required                  empty text is an error (otherwise empty is allowed)
//
// Only global: window.NeurapixJsonEditor.value(textarea) -> current editor text.
(function () {
  "use strict";

  const editors = new Map(); // textarea -> state

  // ---- Where is the JSON error? ------------------------------------------------
  // Browsers word JSON.parse errors differently and many give no position, so a
  // tiny strict scanner finds the offset of the first syntax error itself.
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

  function errorOffset(s) {
    let i = 0;
    const fail = () => { throw i; };
    const ws = () => { while (i < s.length && " \t\n\r".includes(s[i])) i++; };
    const lit = (word) => { for (const c of word) { if (s[i] !== c) fail(); i++; } };
    const str = () => {
      i++; // opening quote
      for (;;) {
        const c = s[i];
        if (c === undefined || c < " ") fail(); // unterminated, or raw control char
        i++;
        if (c === '"') return;
        if (c !== "\\") continue;
        if (s[i] === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(s.slice(i + 1, i + 5))) fail();
          i += 5;
        } else if (s[i] !== undefined && '"\\/bfnrt'.includes(s[i])) i++;
        else fail();
      }
    };
    const value = () => {
      ws();
      const c = s[i];
      if (c === "{" || c === "[") {
        const close = c === "{" ? "}" : "]";
        i++; ws();
        if (s[i] === close) { i++; return; }
        for (;;) {
          if (c === "{") {
            ws();
            if (s[i] !== '"') fail();
            str(); ws();
            if (s[i] !== ":") fail();
            i++;
          }
          value(); ws();
          if (s[i] === ",") { i++; continue; }
          if (s[i] === close) { i++; return; }
          fail();
        }
      }
      if (c === '"') return str();
      if (c === "t") return lit("true");
      if (c === "f") return lit("false");
      if (c === "n") return lit("null");
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(s);
      if (!m) fail();
      i += m[0].length;
    };
    try {
      value(); ws();
      if (i < s.length) fail();
      return -1;
    } catch (e) {
      if (typeof e === "number") return e;
      throw e;
    }
  }

  // -> {ok, empty?, value?, message, pos?}; pos is a CodeMirror {line, ch}.
  function check(text, required) {
    if (!text.trim()) {
      return required
        ? { ok: false, empty: true, message: "Empty: a JSON value is required" }
        : { ok: true, empty: true, message: "Empty" };
    }
    try {
      return { ok: true, value: JSON.parse(text), message: "Valid JSON" };
    } catch (e) {
      let message = String(e.message || e);
      let pos;
      const off = errorOffset(text);
      if (off >= 0) {
        const lines = text.slice(0, off).split("\n");
        pos = { line: lines.length - 1, ch: lines[lines.length - 1].length };
        // Some engines already say "line X column Y": don't repeat it.
        if (!/line \d+/i.test(message)) message += ` (line ${pos.line + 1}, column ${pos.ch + 1})`;
      }
      return { ok: false, message, pos };
    }
  }

  // ---- Helpers -------------------------------------------------------------------
  // textContent only: schema text is data, never markup (no XSS via descriptions).
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

  function parseAttr(textarea, name) {
    const raw = textarea.getAttribute(name);
    if (!raw) return null;
    try {
      return JSON.parse(raw);
    } catch (e) {
      console.warn(`json-editor: bad ${name} on #${textarea.id}`, e);
      return null;
    }
  }

  function typeLabel(prop) {
    let t = Array.isArray(prop.type) ? prop.type.join(" | ") : prop.type;
    if (!t && prop.enum) t = "enum";
    if (t === "array" && prop.items && typeof prop.items.type === "string") t = `array of ${prop.items.type}`;
    return t || "any";
  }

  // ---- Status line -------------------------------------------------------------------
  function setStatus(state, result, flash) {
    const s = state.status;
    const tone = !result.ok ? "text-danger" : result.empty ? "text-muted" : "text-success";
    if (s.textContent !== result.message) s.textContent = result.message; // avoid aria-live chatter
    s.className = `json-editor-status small ${tone}`;
    if (flash) {
      void s.offsetWidth; // reflow so the animation restarts on repeated flashes
      s.classList.add("json-editor-flash");
    }
  }

  function validate(state, flash) {
    const result = check(state.cm.getValue(), state.required);
    setStatus(state, result, flash);
    return result;
  }

  // ---- Docs panel --------------------------------------------------------------------
  function currentSchema(state) {
    if (state.select && state.schemas && isObject(state.schemas[state.select.value])) {
      return state.schemas[state.select.value];
    }
    return state.schema; // fallback (or the only source without a select)
  }

  function visibleProps(state, schema) {
    const props = schema && isObject(schema.properties) ? schema.properties : {};
    return Object.keys(props)
      .filter((name) => !state.hidden.includes(name))
      .map((name) => [name, isObject(props[name]) ? props[name] : {}]);
  }

  function renderDocs(state) {
    // Native and jQuery change events may both fire for one change: render once.
    const key = state.select ? state.select.value : "";
    if (state.renderedKey === key) return;
    state.renderedKey = key;

    const schema = currentSchema(state);
    const panel = state.docs;
    panel.textContent = "";
    const rows = visibleProps(state, schema);
    if (!rows.length) {
      panel.appendChild(el("p", "text-muted small mb-0", schema ? "No documented fields." : "No schema for this selection."));
      return;
    }
    const required = Array.isArray(schema.required) ? schema.required : [];

    const head = panel.appendChild(el("div", "json-editor-docs-head"));
    head.appendChild(el("span", "font-weight-bold", schema.title || "Fields"));
    if (rows.some(([, p]) => "default" in p) && !state.cm.getOption("readOnly")) {
      const btn = head.appendChild(el("button", "btn btn-sm btn-outline-secondary", "Insert defaults"));
      btn.type = "button"; // not a submit button
      btn.addEventListener("click", () => insertDefaults(state));
    }

    const table = panel.appendChild(el("table", "table table-sm mb-0"));
    const headRow = table.appendChild(el("thead")).appendChild(el("tr"));
    for (const h of ["Field", "Type", "Default", "Description"]) headRow.appendChild(el("th", null, h));
    const tbody = table.appendChild(el("tbody"));
    for (const [name, prop] of rows) {
      const tr = tbody.appendChild(el("tr"));
      const nameCell = tr.appendChild(el("td"));
      const code = nameCell.appendChild(el("code", null, name));
      if (required.includes(name)) {
        code.classList.add("font-weight-bold");
        nameCell.title = "required";
      }
      const typeCell = tr.appendChild(el("td", null, typeLabel(prop)));
      if (Array.isArray(prop.enum)) {
        typeCell.appendChild(el("div", "text-muted", "one of: " + prop.enum.map((v) => JSON.stringify(v)).join(", ")));
      }
      tr.appendChild(el("td", null, "default" in prop ? JSON.stringify(prop.default) : ""));
      tr.appendChild(el("td", null, prop.description || prop.title || ""));
    }
  }

  function insertDefaults(state) {
    const cm = state.cm;
    const text = cm.getValue();
    const result = text.trim() ? check(text, true) : { ok: true, value: {} };
    if (!result.ok) {
      setStatus(state, result, true);
      if (result.pos) cm.setCursor(result.pos);
      cm.focus();
      return;
    }
    if (!isObject(result.value)) {
      setStatus(state, { ok: false, message: "Insert defaults needs a JSON object" }, true);
      return;
    }
    const obj = result.value;
    let added = 0;
    // Only missing keys: never overwrite what the user typed. Hidden (secret) fields are skipped.
    for (const [name, prop] of visibleProps(state, currentSchema(state))) {
      if ("default" in prop && !Object.prototype.hasOwnProperty.call(obj, name)) {
        obj[name] = prop.default;
        added++;
      }
    }
    if (added) cm.setValue(JSON.stringify(obj, null, 2)); // "changes" handler saves and validates
    setStatus(state, {
      ok: true,
      message: added ? `Inserted ${added} default${added > 1 ? "s" : ""}; valid JSON` : "All defaults already present",
    }, true);
  }

  // ---- Upgrade one textarea -------------------------------------------------------------
  function upgrade(textarea) {
    if (editors.has(textarea)) return;
    const hiddenAtStart = textarea.offsetParent === null;
    const required = textarea.required;
    // CodeMirror hides the textarea, and a hidden invalid `required` control makes the
    // browser silently refuse to submit; the submit handler below enforces it instead.
    textarea.required = false;

    const cm = window.CodeMirror.fromTextArea(textarea, {
      mode: { name: "javascript", json: true },
      lineNumbers: true,
      matchBrackets: true,
      autoCloseBrackets: true,
      tabSize: 2,
      indentUnit: 2,
      viewportMargin: Infinity, // render all lines so the height follows the content
      readOnly: textarea.readOnly || textarea.disabled,
    });

    // The box is the textarea's next sibling, not its parent, so Bootstrap's
    // `.is-invalid ~ .invalid-feedback` still shows the server's field errors.
    const box = el("div", "json-editor");
    textarea.after(box);
    const wrapper = box.appendChild(cm.getWrapperElement());
    if (textarea.classList.contains("is-invalid")) wrapper.classList.add("is-invalid");

    const state = {
      textarea,
      cm,
      required,
      status: box.appendChild(el("div", "json-editor-status small")),
      docs: null,
      schema: parseAttr(textarea, "data-schema"),
      schemas: parseAttr(textarea, "data-schemas"),
      select: null,
      renderedKey: null,
      hidden: (textarea.getAttribute("data-hide-fields") || "").split(",").map((s) => s.trim()).filter(Boolean),
    };
    state.status.setAttribute("aria-live", "polite");
    state.status.addEventListener("animationend", () => state.status.classList.remove("json-editor-flash"));
    editors.set(textarea, state);

    cm.on("changes", () => {
      cm.save(); // keep the real form field current so a plain POST works
      validate(state, false);
      // For listeners such as the parameters preview: the textarea itself never fires "input".
      textarea.dispatchEvent(new CustomEvent("json-editor:change", { bubbles: true }));
    });
    validate(state, false);

    const sourceId = textarea.getAttribute("data-schema-source");
    if (sourceId) {
      state.select = document.getElementById(sourceId);
      if (!state.select) console.warn(`json-editor: no element #${sourceId}`);
    }
    if (state.schema || state.schemas) {
      state.docs = box.appendChild(el("div", "json-editor-docs"));
      renderDocs(state);
      if (state.select) {
        const onChange = () => renderDocs(state);
        state.select.addEventListener("change", onChange);
        // Select2 announces changes with jQuery's trigger(), which native listeners never see.
        if (window.jQuery) window.jQuery(state.select).on("change", onChange);
      }
    }

    // CodeMirror can't measure while hidden (closed tab, collapsed panel): refresh when first shown.
    if (hiddenAtStart && "IntersectionObserver" in window) {
      const io = new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting)) {
          cm.refresh();
          io.disconnect();
        }
      });
      io.observe(wrapper);
    }

    const form = textarea.form;
    if (form && !form.hasAttribute("data-json-editor-bound")) {
      form.setAttribute("data-json-editor-bound", "");
      form.addEventListener("submit", onSubmit);
    }
  }

  // Convenience only: the server validates the JSON again.
  function onSubmit(event) {
    let bad = null;
    for (const state of editors.values()) {
      if (state.textarea.form !== event.currentTarget) continue;
      state.cm.save();
      const result = check(state.cm.getValue(), state.required);
      setStatus(state, result, !result.ok); // flash only the broken ones
      if (!result.ok && !bad) bad = { state, result };
    }
    if (!bad) return;
    event.preventDefault();
    const cm = bad.state.cm;
    cm.getWrapperElement().scrollIntoView({ block: "center" });
    if (bad.result.pos) cm.setCursor(bad.result.pos);
    cm.focus();
  }

  function init() {
    if (!window.CodeMirror) {
      console.error("json-editor: load CodeMirror before json-editor.js");
      return;
    }
    document.querySelectorAll("textarea[data-json-editor]").forEach(upgrade);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init(); // loaded late (defer/async or injected)

  window.NeurapixJsonEditor = {
    value(textarea) {
      if (typeof textarea === "string") textarea = document.getElementById(textarea);
      const state = textarea && editors.get(textarea);
      return state ? state.cm.getValue() : textarea ? textarea.value : "";
    },
  };
})();
