// Function parameters on /f/<key> and in the admin's live preview: slider readouts and the live price.
// The price rule mirrors services.parameters.price; the server recomputes it and charges its own figure.
// Only global: window.NeurapixParams.bind(root) for forms inserted later (the admin preview).
(function () {
  "use strict";

  // The value of one parameter as a price rule names it (services.parameters.rule_key): true/false for a
  // toggle, "4" (not "4.0") for numbers, the option value otherwise; null when nothing is chosen.
  function ruleKey(el) {
    if (el.tagName === "FIELDSET") {
      const chosen = el.querySelector("input:checked");
      return chosen ? chosen.value : null;
    }
    if (el.type === "checkbox") return el.checked ? "true" : "false";
    if (el.type === "number" || el.type === "range") return el.value === "" ? null : String(Number(el.value));
    return el.value === "" ? null : el.value;
  }

  function bind(root) {
    if (!root || root.dataset.paramsBound) return;
    root.dataset.paramsBound = "1";
    const price = root.querySelector("[data-price-value]");
    const plural = root.querySelector("[data-price-plural]");

    function update() {
      root.querySelectorAll("output[data-slider-value]").forEach((out) => {
        const input = root.querySelector("#" + CSS.escape(out.getAttribute("for")));
        if (input) out.textContent = input.value;
      });
      if (!price) return;
      let factor = 1;
      root.querySelectorAll("[data-price-multiplier]").forEach((el) => {
        const rule = JSON.parse(el.dataset.priceMultiplier);
        const key = ruleKey(el);
        if (key !== null && Object.prototype.hasOwnProperty.call(rule, key)) factor *= Number(rule[key]);
      });
      const base = Number(price.dataset.priceBase);
      const now = Math.ceil(Math.round(base * factor * 1e6) / 1e6);
      price.textContent = String(now);
      if (plural) plural.textContent = now === 1 ? "" : "s";
    }

    root.addEventListener("input", update);
    root.addEventListener("change", update);
    update();
  }

  window.NeurapixParams = { bind };
  document.querySelectorAll("[data-parameters-form]").forEach(bind);
})();
