// Admin catalog forms: confirm before disabling a provider others depend on, and the "Test provider" panel.
(function () {
  const form = document.querySelector("form.admin-form") || document.querySelector("form[method=post]");
  if (!form) return;

  // Disabling a provider takes its functions off the site: say which, and ask first.
  const enabled = form.querySelector("input[data-confirm-disable]");
  if (enabled) {
    const wasOn = enabled.checked;
    form.addEventListener("submit", (event) => {
      if (wasOn && !enabled.checked && !window.confirm(enabled.dataset.confirmDisable)) event.preventDefault();
    });
  }

  const panel = document.getElementById("provider-test");
  if (!panel) return;
  const button = document.getElementById("provider-test-run");
  const out = document.getElementById("provider-test-result");

  function line(label, value) {
    const p = document.createElement("p");
    p.className = "mb-1";
    const b = document.createElement("strong");
    b.textContent = label + ": ";
    p.append(b, document.createTextNode(value));
    return p;
  }

  button.addEventListener("click", () => {
    // The form as it is on screen, unsaved edits included (the editors keep their textareas in sync).
    const data = new FormData(form);
    button.disabled = true;
    out.replaceChildren(line("Status", "calling the provider…"));
    fetch(panel.dataset.testUrl, { method: "POST", body: data, credentials: "same-origin" })
      .then((r) => r.json().then((body) => ({ status: r.status, body })))
      .then(({ body }) => {
        const box = document.createElement("div");
        box.className = "alert " + (body.ok ? "alert-success" : "alert-danger");
        box.id = "provider-test-outcome";
        box.append(line("Result", body.ok ? "success" : "failed"), line("Latency", body.latency_ms + " ms"));
        if (body.provider_job_id) box.append(line("Provider job id", body.provider_job_id));
        if (body.size) box.append(line("Output size", body.size.join(" × ") + " px"));
        if (body.error) box.append(line("Error", body.error));
        if (body.thumbnail) {
          const img = document.createElement("img");
          img.src = body.thumbnail;
          img.alt = "Test output";
          img.className = "img-thumbnail mt-2";
          box.append(img);
        }
        out.replaceChildren(box);
      })
      .catch((err) => out.replaceChildren(line("Error", "the test request failed: " + err)))
      .finally(() => { button.disabled = false; });
  });
})();
