// The inbox without reloading: the thread polls its JSON endpoint and swaps in the new messages and statuses; the
// inbox list polls a signature of the inbox and reloads its table when a message arrives or a reply goes out.
(function () {
  "use strict";
  var PERIOD = 2000;
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); });
  }
  function watchThread(box) {
    function poll() {
      getJSON(box.dataset.url + "?signature=" + encodeURIComponent(box.dataset.signature))
        .then(function (data) {
          if (data.changed) {
            box.innerHTML = data.html;
            box.dataset.signature = data.signature;
            box.dispatchEvent(new CustomEvent("thread:updated", { bubbles: true }));
          }
          setTimeout(poll, PERIOD);
        })
        .catch(function () { setTimeout(poll, PERIOD * 3); });
    }
    setTimeout(poll, PERIOD);
  }
  function watchList(box) {
    var first = null;
    function poll() {
      getJSON(box.dataset.url)
        .then(function (data) {
          if (first === null) first = data.signature;
          if (data.signature !== first) {
            first = data.signature;
            return fetch(window.location.href, { credentials: "same-origin" })
              .then(function (r) { return r.text(); })
              .then(function (html) {
                var doc = new DOMParser().parseFromString(html, "text/html");
                var fresh = doc.getElementById("inbox-results"), old = document.getElementById("inbox-results");
                if (fresh && old) old.replaceWith(fresh);
              });
          }
        })
        .then(function () { setTimeout(poll, PERIOD); })
        .catch(function () { setTimeout(poll, PERIOD * 3); });
    }
    poll();
  }
  function quickReplies() {
    var text = document.getElementById("reply-text");
    document.querySelectorAll(".quick-reply").forEach(function (button) {
      button.addEventListener("click", function () {
        text.value = text.value ? text.value + "\n" + button.dataset.text : button.dataset.text;
        text.focus();
      });
    });
  }
  function start() {
    var thread = document.getElementById("thread-live");
    if (thread) watchThread(thread);
    var list = document.getElementById("inbox-live");
    if (list) watchList(list);
    quickReplies();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
