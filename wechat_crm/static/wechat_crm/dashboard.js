// The dashboard's pushes in flight: each progress bar polls its push's JSON progress until the push is final.
(function () {
  "use strict";
  var FINAL = { sent: 1, partially_failed: 1, cancelled: 1 };
  function watch(box) {
    var fill = box.querySelector(".dash-bar-fill");
    var text = box.querySelector(".push-text");
    function poll() {
      fetch(box.dataset.progressUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (p) {
          fill.style.width = p.percent + "%";
          text.textContent = p.status_display + " · " + p.done + " / " + p.recipients + " (" + p.percent + "%)";
          if (!FINAL[p.status]) setTimeout(poll, 3000);
        })
        .catch(function () { setTimeout(poll, 10000); });
    }
    setTimeout(poll, 3000);
  }
  function start() { document.querySelectorAll(".push-in-flight[data-progress-url]").forEach(watch); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
