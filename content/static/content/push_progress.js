// The live progress bar of a push's admin page: polls the JSON endpoint until the push is final.
(function () {
  "use strict";
  function start() {
    var box = document.getElementById("push-progress");
    if (!box) return;
    var bar = box.querySelector(".push-progress-bar");
    var text = box.querySelector(".push-progress-text");
    var final = { sent: 1, partially_failed: 1, cancelled: 1 };
    function poll() {
      fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (p) {
          bar.style.width = p.percent + "%";
          var parts = [];
          // Status names come translated from the template's data-label-<status> attributes.
          Object.keys(p.counts).forEach(function (k) {
            var label = box.dataset["label" + k.charAt(0).toUpperCase() + k.slice(1)] || k;
            if (p.counts[k]) parts.push(label + " " + p.counts[k]);
          });
          text.textContent = p.status_display + " · " + p.done + " / " + p.recipients + " (" + p.percent + "%)" +
            (parts.length ? " · " + parts.join(", ") : "");
          if (p.status !== "draft" && (!final[p.status] || p.done < p.recipients)) setTimeout(poll, 2000);
        })
        .catch(function () { setTimeout(poll, 5000); });
    }
    poll();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
