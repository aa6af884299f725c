// Job page: polls /jobs/<id>.json until the job finishes, then shows the result and the download.
(function () {
  const root = document.getElementById("job");
  if (!root) return;
  const finished = ["done", "failed", "cancelled"];
  const statusEl = document.getElementById("job-status");
  let delay = 1000;

  function show(job) {
    statusEl.textContent = job.status;
    statusEl.className = "status status-" + job.status;
    document.getElementById("job-busy").hidden = finished.includes(job.status);
    const error = document.getElementById("job-error");
    error.hidden = !job.error;
    error.textContent = job.error || "";
    if (job.status === "done" && job.output_url) {
      document.getElementById("after-img").src = job.output_url;
      document.getElementById("after").hidden = false;
      document.getElementById("download").hidden = false;
    }
    // A refund changes the balance: keep the header's figure current.
    const balance = document.getElementById("balance");
    if (balance && typeof job.balance === "number") balance.textContent = job.balance;
    const cancel = document.getElementById("cancel");
    if (cancel && finished.includes(job.status)) cancel.hidden = true;
  }

  function tick() {
    fetch(root.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((job) => {
        show(job);
        if (!finished.includes(job.status)) setTimeout(tick, delay);
      })
      .catch(() => {
        // Network hiccup: back off, keep trying.
        delay = Math.min(delay * 2, 15000);
        setTimeout(tick, delay);
      });
  }

  if (!finished.includes(root.dataset.status)) setTimeout(tick, delay);
})();
