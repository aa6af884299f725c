// Behaviour every admin page shares, in a file so the CSP can forbid inline script:
// links that only carry a click handler (href="#" or Flask-Admin's "javascript:void(0)") never navigate,
// buttons with data-confirm ask first, data-add-inline adds a row to an inline list (fallback chains), and
// data-model-action runs a bulk action from a list's "With selected" menu, and data-kv-add / data-kv-remove add
// and remove rows of a structured editor (app/admin/fields.py: plan limits, page translations). Also teaches
// x-editable (the list's inline cell editors) to read its JSON options without eval, which the CSP forbids.
(function () {
  "use strict";

  // Icon-only help links (a list column's description) keep their text as a name: Bootstrap's tooltips move
  // the title away when they start on DOM ready, which comes after this file runs.
  document.querySelectorAll("[data-role=tooltip][title]").forEach((link) => {
    link.setAttribute("aria-label", link.getAttribute("title"));
  });

  // Flask-Admin's form.js announces itself with "adminFormReady" after x-editable has loaded and before
  // the editors are set up (on DOM ready): the moment to swap x-editable's eval-based JSON reader.
  if (window.jQuery) {
    window.jQuery(document).on("adminFormReady", () => {
      const utils = window.jQuery.fn.editableutils;
      if (!utils) return;
      utils.tryParseJson = (value, safe) => {
        if (typeof value !== "string" || !/^[{[].*[}\]]$/.test(value)) return value;
        try { return JSON.parse(value); } catch (error) { if (safe) return value; throw error; }
      };
    });
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[href]");
    if (link) {
      const href = link.getAttribute("href");
      if (href === "#" || href.trim().toLowerCase().startsWith("javascript:")) event.preventDefault();
    }

    const confirmed = event.target.closest("[data-confirm]");
    if (confirmed && !window.confirm(confirmed.dataset.confirm)) {
      event.preventDefault();
      event.stopImmediatePropagation();
      return;
    }

    const adder = event.target.closest("[data-add-inline]");
    if (adder && window.faForm) window.faForm.addInlineField(adder, adder.dataset.addInline);

    const bulk = event.target.closest("[data-model-action]");
    if (bulk && window.modelActions) window.modelActions.execute(bulk.dataset.modelAction);

    const add = event.target.closest("[data-kv-add]");
    if (add) addRow(add.closest("[data-kv-editor]"));

    const remove = event.target.closest("[data-kv-remove]");
    if (remove) removeRow(remove.closest("tr"));
  }, true);

  // A new row is the editor's <template> with unique ids (each row's header cell names its inputs).
  let added = 0;
  function addRow(editor) {
    const template = editor.querySelector("template[data-kv-template]");
    const row = template.content.firstElementChild.cloneNode(true);
    const id = `${editor.id}-row-added-${added += 1}`;
    const number = editor.querySelectorAll("tbody tr").length + 1;
    row.querySelector("th").id = id;
    row.querySelector("th .sr-only").textContent = `Row ${number}`;
    row.querySelectorAll("[aria-labelledby]").forEach((input) => {
      input.setAttribute("aria-labelledby", input.getAttribute("aria-labelledby").replace(/\S+$/, id));
    });
    row.querySelector("[data-kv-remove]").setAttribute("aria-label", `Remove row ${number}`);
    editor.querySelector("tbody").appendChild(row);
    row.querySelector("input, select, textarea").focus();
  }

  function removeRow(row) {
    const editor = row.closest("[data-kv-editor]");
    row.remove();
    const next = editor.querySelector("[data-kv-add]");
    if (next) next.focus();
  }
})();
