// Tollgate console: live approval list and expiry countdowns.
// Served from the binary (/ui/assets/live.js); no inline script anywhere.
// It only ever moves server-rendered, server-escaped markup (parsed with
// DOMParser, which runs no script) and sets textContent.
(function () {
  "use strict";
  function fmt(ms) {
    if (ms <= 0) return "expired";
    var s = Math.floor(ms / 1000), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
        m = Math.floor(s % 3600 / 60), r = s % 60;
    if (d > 0) return "in " + d + "d " + h + "h";
    if (h > 0) return "in " + h + "h " + m + "m";
    if (m > 0) return "in " + m + "m " + r + "s";
    return "in " + r + "s";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-countdown]").forEach(function (t) {
      var at = Date.parse(t.getAttribute("datetime"));
      if (!isNaN(at)) t.textContent = fmt(at - now);
    });
  }
  tick();
  setInterval(tick, 1000);

  var list = document.getElementById("approvals");
  var src = list && list.getAttribute("data-events");
  if (!list || !src || !window.EventSource) return;
  var status = document.getElementById("live-status");
  var pending = false;
  function reload() {
    if (pending) return;
    pending = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("approvals");
        var cur = document.getElementById("approvals");
        if (fresh && cur) {
          cur.replaceWith(document.adoptNode(fresh));
          tick();
        }
        if (status) status.textContent = "Updated " + new Date().toLocaleTimeString();
      })
      .catch(function () { if (status) status.textContent = "Update failed; reload the page"; })
      .then(function () { pending = false; });
  }
  var es = new EventSource(src);
  es.addEventListener("changed", reload);
  es.addEventListener("open", function () { if (status) status.textContent = "Live"; });
  es.addEventListener("error", function () { if (status) status.textContent = "Reconnecting…"; });
})();
