// Admin function form: the live preview beside the parameters JSON. The server validates the definition and
// renders it with the site's own template (/admin/functions/parameters-preview); errors are listed by field.
(function () {
  "use strict";
  const textarea = document.querySelector("textarea[data-parameters-preview]");
  if (!textarea) return;
  const form = textarea.form;
  const group = textarea.closest(".form-group") || textarea.parentElement;

  const panel = document.createElement("section");
  panel.className = "parameters-preview card";
  panel.id = "parameters-preview";
  panel.setAttribute("aria-labelledby", "parameters-preview-title");
  const title = document.createElement("h5");
  title.id = "parameters-preview-title";
  title.className = "card-header";
  title.textContent = "Preview: the form customers see";
  const errors = document.createElement("ul");
  errors.id = "parameters-preview-errors";
  errors.className = "text-danger mb-2";
  errors.setAttribute("aria-live", "polite");
  const body = document.createElement("div");
  body.className = "card-body site-preview";
  body.id = "parameters-preview-form";
  panel.append(title, errors, body);
  group.classList.add("parameters-with-preview");
  group.append(panel);

  let timer = null;
  let sequence = 0;

  function text() {
    return window.NeurapixJsonEditor ? window.NeurapixJsonEditor.value(textarea) : textarea.value;
  }

  function refresh() {
    const data = new FormData();
    data.append("parameters", text());
    const priceInput = form && form.querySelector("[name=price_per_use]");
    data.append("price_per_use", priceInput ? priceInput.value : "0");
    const csrf = form && form.querySelector("[name=csrf_token]");
    if (csrf) data.append("csrf_token", csrf.value);
    const mine = ++sequence;
    fetch(textarea.dataset.parametersPreview, { method: "POST", body: data, credentials: "same-origin" })
      .then((r) => r.json())
      .then((answer) => {
        if (mine !== sequence) return; // an older answer arriving late
        errors.replaceChildren(...answer.errors.map((message) => {
          const li = document.createElement("li");
          li.textContent = message;
          return li;
        }));
        panel.dataset.state = answer.ok ? "valid" : "invalid";
        if (answer.ok) {
          // Server-rendered by the site's template: every value in it is escaped there.
          body.innerHTML = answer.html;
          const root = body.querySelector("[data-parameters-form]");
          if (root && window.NeurapixParams) window.NeurapixParams.bind(root);
        }
      })
      .catch((err) => {
        const li = document.createElement("li");
        li.textContent = "The preview could not be loaded: " + err;
        errors.replaceChildren(li);
      });
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  }

  textarea.addEventListener("json-editor:change", soon);
  textarea.addEventListener("input", soon);
  const priceInput = form && form.querySelector("[name=price_per_use]");
  if (priceInput) priceInput.addEventListener("input", soon);
  refresh();
})();
