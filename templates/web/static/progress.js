// The issue page's live progress: while the issue is being sent, read the ledger's count
// from the small JSON endpoint every couple of seconds and update the bar and the figures.
// Without this script the page shows the same figures on each reload.
(function () {
  var panel = document.getElementById("progress");
  if (!panel || !panel.dataset.poll) return;
  var bar = panel.querySelector("progress");
  var live = panel.querySelector("[data-live]");
  var busy = { sending: true };
  var format = function (n) { return Number(n).toLocaleString("en"); };
  var set = function (name, value) {
    var el = panel.querySelector('[data-count="' + name + '"]');
    if (el) el.textContent = format(value);
  };
  var tick = function () {
    fetch(panel.dataset.poll, { credentials: "same-origin", headers: { accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (p) {
        bar.max = Math.max(p.total, 1);
        bar.value = p.settled;
        bar.textContent = p.settled + " of " + p.total;
        set("sent", p.sent);
        set("waiting", p.pending + p.sending);
        set("failed", p.failed);
        set("skipped", p.skipped);
        set("total", p.total);
        panel.dataset.status = p.status;
        if (live) live.textContent = p.status === "sent"
          ? "Sent: " + format(p.sent) + " delivered, " + format(p.failed) + " failed."
          : format(p.settled) + " of " + format(p.total) + " done.";
        if (busy[p.status]) window.setTimeout(tick, 1500);
      })
      .catch(function () { window.setTimeout(tick, 5000); });
  };
  window.setTimeout(tick, 1000);
})();
