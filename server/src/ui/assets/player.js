// Tollgate console: a small asciicast v2 player (/ui/assets/player.js).
// Hand-rolled (about 100 lines) instead of vendoring asciinema-player (a
// few hundred KB): recorded output is attacker-controlled, and this player
// only ever writes it with textContent, after stripping terminal escape
// sequences, so nothing in a recording can become markup.
(function () {
  "use strict";
  var root = document.getElementById("player");
  if (!root) return;
  var src = root.getAttribute("data-src");
  var screen = root.querySelector(".term");
  var play = root.querySelector("button[data-play]");
  var seek = root.querySelector("input[type=range]");
  var speedSel = root.querySelector("select");
  var clock = root.querySelector(".clock");
  var frames = [], header = null, duration = 0, pos = 0, playing = false, timer = null, last = 0;

  // Terminal output to plain text: drop CSI/OSC/other escapes, apply \r and backspace.
  function clean(s) {
    s = s.replace(/\x1b\][^\x07\x1b]*(\x07|\x1b\\)/g, "")
         .replace(/\x1b\[[0-?]*[ -\/]*[@-~]/g, "")
         .replace(/\x1b[@-Z\\-_]/g, "")
         .replace(/\r\n/g, "\n");
    return s;
  }
  function render(upto) {
    var text = "";
    for (var i = 0; i < frames.length && frames[i][0] <= upto; i++) text += frames[i][1];
    var lines = clean(text).split("\n").map(function (l) {
      var cr = l.lastIndexOf("\r");
      if (cr >= 0) l = l.slice(cr + 1);
      while (/[^\x08]\x08/.test(l)) l = l.replace(/[^\x08]\x08/, "");
      return l.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
    });
    screen.textContent = lines.join("\n");
    screen.scrollTop = screen.scrollHeight;
    seek.value = String(Math.round(upto * 1000));
    clock.textContent = upto.toFixed(1) + " s / " + duration.toFixed(1) + " s";
    root.setAttribute("data-position", String(upto));
  }
  function step(now) {
    if (!playing) return;
    var speed = parseFloat(speedSel.value) || 1;
    pos += (now - last) / 1000 * speed;
    last = now;
    if (pos >= duration) { pos = duration; stop(); root.setAttribute("data-state", "ended"); }
    render(pos);
    if (playing) timer = requestAnimationFrame(step);
  }
  function start() {
    if (pos >= duration) pos = 0;
    playing = true; play.textContent = "Pause"; root.setAttribute("data-state", "playing");
    last = performance.now(); timer = requestAnimationFrame(step);
  }
  function stop() {
    playing = false; play.textContent = "Play";
    if (timer) cancelAnimationFrame(timer);
    if (root.getAttribute("data-state") === "playing") root.setAttribute("data-state", "paused");
  }
  play.addEventListener("click", function () { playing ? stop() : start(); });
  seek.addEventListener("input", function () { pos = parseInt(seek.value, 10) / 1000; render(pos); });
  fetch(src, { credentials: "same-origin" })
    .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.text(); })
    .then(function (text) {
      var lines = text.split("\n").filter(function (l) { return l.trim() !== ""; });
      header = JSON.parse(lines[0]);
      if (!header || header.version !== 2) throw new Error("not an asciicast v2 recording");
      for (var i = 1; i < lines.length; i++) {
        var ev = JSON.parse(lines[i]);
        if (Array.isArray(ev) && ev[1] === "o" && typeof ev[2] === "string" && typeof ev[0] === "number") frames.push([ev[0], ev[2]]);
      }
      duration = frames.length ? frames[frames.length - 1][0] : 0;
      seek.max = String(Math.round(duration * 1000));
      root.setAttribute("data-state", "ready");
      play.disabled = false;
      render(0);
    })
    .catch(function (e) {
      screen.textContent = "Cannot load the recording: " + e.message;
      root.setAttribute("data-state", "error");
    });
})();
