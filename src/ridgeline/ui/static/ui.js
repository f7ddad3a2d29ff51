// Ridgeline UI: keyboard shortcuts for verdicts and the review session timer.
// Served as a file (the Content-Security-Policy allows no inline script).
(function () {
  "use strict";
  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" && target.type !== "radio" || tag === "TEXTAREA" || tag === "SELECT";
  }
  // Shortcuts: a key picks the radio button whose data-key it is (c, e, n, u, 0-4, v, x).
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var form = document.getElementById("verdict-form") || document.getElementById("audit-form");
    if (!form) { return; }
    var key = event.key.toLowerCase();
    var radio = form.querySelector('input[type=radio][data-key="' + key + '"]');
    if (radio) {
      radio.checked = true;
      radio.focus();
      event.preventDefault();
    }
  });
  // The session timer counts review time up; at the limit the page reloads and the
  // server (which enforces the break) shows when the queue opens again.
  var timer = document.getElementById("timer");
  if (timer) {
    var worked = parseInt(timer.getAttribute("data-worked"), 10) || 0;
    var limit = parseInt(timer.getAttribute("data-limit"), 10) || 0;
    var value = document.getElementById("timer-value");
    var started = Date.now();
    var tick = function () {
      var seconds = worked + Math.floor((Date.now() - started) / 1000);
      var m = Math.floor(seconds / 60), s = seconds % 60;
      value.textContent = m + " min " + (s < 10 ? "0" : "") + s + " s";
      if (limit > 0 && seconds >= limit) {
        timer.classList.add("due");
        window.location.reload();
        return;
      }
      window.setTimeout(tick, 1000);
    };
    tick();
  }
})();
