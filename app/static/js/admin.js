// Behaviour every admin page shares, in a file so the CSP can forbid inline script:
// links that only carry a click handler (href="#" or Flask-Admin's "javascript:void(0)") never navigate,
// buttons with data-confirm ask first, data-add-inline adds a row to an inline list (fallback chains), and
// data-model-action runs a bulk action from a list's "With selected" menu.
(function () {
  "use strict";

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
