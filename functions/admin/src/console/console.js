// The console's only script, served from the binary (no build step, no CDN). Every page
// works without it; it adds two things:
// - copy buttons (`button[data-copy]`) put their value on the clipboard;
// - a live list (`tbody[data-live]`): every `data-refresh-ms` (2 s locally, 10 s against
//   a stack), while the tab is visible, the rows are fetched again from the server
//   (`data-live` is the rows' URL, with the page's filters)
//   and replaced, so new events appear without a reload. The server renders the rows, so
//   everything shown is escaped by the same templates as the page.
"use strict";

document.querySelectorAll("button[data-copy]").forEach((button) => {
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(button.dataset.copy);
      button.textContent = "Copied";
    } catch (_) {
      button.textContent = "Select and copy the URL";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 2000);
  });
});

const live = document.querySelector("tbody[data-live]");
if (live) {
  const status = document.getElementById("live-status");
  const refresh = async () => {
    if (document.hidden) return;
    try {
      const response = await fetch(live.dataset.live, { headers: { accept: "text/html" } });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const rows = await response.text();
      // The status is a polite live region: it changes (and is announced) only when
      // the rows did, or when updates pause or resume.
      if (rows !== live.dataset.rows || status.dataset.paused) {
        live.innerHTML = rows;
        live.dataset.rows = rows;
        delete status.dataset.paused;
        status.textContent = "Live: updated " + new Date().toLocaleTimeString();
      }
    } catch (error) {
      status.dataset.paused = "yes";
      status.textContent = "Live updates paused (" + error.message + "); retrying";
    }
  };
  setInterval(refresh, Number(live.dataset.refreshMs) || 2000);
}
