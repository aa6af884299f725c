// Job page: polls /jobs/<id>.json until the job finishes (queue position, then elapsed time while it runs),
// then shows the result, the before/after slider and the download. Status changes land in a role=status
// region, so screen readers announce them; the ticking timer sits outside it.
(function () {
  const root = document.getElementById("job");
  if (!root) return;
  const finished = ["done", "failed", "cancelled"];
  const statusEl = document.getElementById("job-status");
  const positionEl = document.getElementById("job-position");
  const timer = document.getElementById("job-timer");
  const elapsed = document.getElementById("job-elapsed");
  let startedAt = root.dataset.startedAt ? Date.parse(root.dataset.startedAt) : null;
  let status = root.dataset.status;
  let delay = 1000;

  function ordinalPosition(position) {
    return position ? " · number " + position + " in the queue" : "";
  }

  function showElapsed() {
    const running = startedAt && status !== "queued" && !finished.includes(status);
    timer.hidden = !running;
    if (running) {
      const seconds = Math.max(0, Math.round((Date.now() - startedAt) / 1000));
      elapsed.textContent = seconds < 60 ? seconds + " s" : Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
    }
  }

  function setText(el, text) {
    // Writing the same text again would make some screen readers repeat it.
    if (el.textContent !== text) el.textContent = text;
  }

  function show(job) {
    status = job.status;
    setText(statusEl, job.status);
    statusEl.className = "status status-" + job.status;
    setText(positionEl, job.status === "queued" ? ordinalPosition(job.queue_position) : "");
    if (job.started_at) startedAt = Date.parse(job.started_at);
    showElapsed();
    document.getElementById("job-busy").hidden = finished.includes(job.status);
    const error = document.getElementById("job-error");
    error.hidden = !job.error;
    setText(error, job.error || "");
    if (job.status === "done" && job.output_url) {
      document.getElementById("after-img").src = job.output_url;
      document.getElementById("after").hidden = false;
      document.getElementById("download").hidden = false;
      document.getElementById("compare-control").hidden = false;
      document.getElementById("compare").classList.add("compare-ready");
    }
    // A refund changes the balance: keep the header's figure current.
    const balance = document.getElementById("balance");
    if (balance && typeof job.balance === "number") balance.textContent = job.balance;
    const cancel = document.getElementById("cancel");
    if (cancel && finished.includes(job.status)) cancel.hidden = true;
    const remove = document.getElementById("delete-result");
    if (remove && finished.includes(job.status)) remove.hidden = false;
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

  // Before/after: the result covers the upload up to the slider's position.
  const slider = document.getElementById("compare-slider");
  const after = document.getElementById("after");
  function reveal() {
    after.style.clipPath = "inset(0 " + (100 - Number(slider.value)) + "% 0 0)";
    slider.setAttribute("aria-valuetext", slider.value + "% result shown");
  }
  slider.addEventListener("input", reveal);
  reveal();

  if (!finished.includes(status)) {
    setInterval(showElapsed, 1000);
    setTimeout(tick, delay);
  }
})();
