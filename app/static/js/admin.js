// Behaviour every admin page shares, in a file so the CSP can forbid inline script:
// links that only carry a click handler (href="#" or Flask-Admin's "javascript:void(0)") never navigate,
// buttons with data-confirm ask first, data-add-inline adds a row to an inline list (fallback chains), and
// data-model-action runs a bulk action from a list's "With selected" menu. Also teaches x-editable (the
// list's inline cell editors) to read its JSON options without eval, which the CSP forbids.
(function () {
  "use strict";

  // Flask-Admin's base template has no lang attribute and marks the flash messages' close buttons aria-hidden
  // although they take focus: the admin is written in English, and the buttons get a name instead.
  if (!document.documentElement.lang) document.documentElement.lang = "en";
  document.querySelectorAll(".alert .close[aria-hidden]").forEach((button) => {
    button.removeAttribute("aria-hidden");
    button.setAttribute("aria-label", "Dismiss this message");
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
  }, true);
})();
