// Behaviour every admin page shares, in a file so the CSP can forbid inline script:
// links that only carry a click handler (href="#" or Flask-Admin's "javascript:void(0)") never navigate,
// buttons with data-confirm ask first, and data-add-inline adds a row to an inline list (fallback chains).
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
  }, true);
})();
