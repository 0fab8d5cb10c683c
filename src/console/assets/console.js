// enrichd console: the little the pages need a script for. Everything
// works without it but the print buttons and the live batch progress.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-print]")) {
    button.addEventListener("click", () => window.print());
  }

  // A graph node selected: its profile card is the target; mark the node.
  const nodes = document.querySelectorAll("a.node");
  const mark = () => {
    const id = decodeURIComponent(location.hash.slice(1));
    for (const n of nodes) n.classList.toggle("selected", n.dataset.node === id);
  };
  window.addEventListener("hashchange", mark);
  mark();

  // A running batch: poll its progress, reload when it has finished.
  const job = document.getElementById("job");
  if (job && job.dataset.state === "RUNNING") {
    const poll = async () => {
      try {
        const r = await fetch(`/console/batches/${job.dataset.job}/progress`, {
          credentials: "same-origin",
          headers: { accept: "application/json" },
        });
        if (!r.ok) return;
        const view = await r.json();
        document.getElementById("job-state").textContent = view.state;
        document.getElementById("job-done").textContent = view.rowsDone;
        document.getElementById("job-progress").value = view.rowsDone;
        if (view.state !== "RUNNING") {
          location.reload();
          return;
        }
      } catch (_) {
        // The next tick tries again.
      }
      setTimeout(poll, 1000);
    };
    setTimeout(poll, 1000);
  }
});
