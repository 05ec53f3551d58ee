/*
 * Meeting mode and the live "confirm on your phone" page (esign/web/meeting.py).
 *
 * Loaded as a file (no inline script: the CSP forbids it).
 *
 * On the confirmation page (an element with data-phone-poll): POSTs the poll URL
 * every data-poll-seconds with the CSRF token from <meta name="csrf-token">,
 * updates each document's status, the summary and the countdown, and stops when
 * every document has an answer. The page works without it: "Check now" and
 * "Cancel" are plain forms.
 *
 * On the meeting list (data-meeting-form): "Select all", and the button counts
 * the selected documents.
 */
(function () {
  "use strict";

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var m = Math.floor(s / 60);
    var r = s % 60;
    return m + ":" + (r < 10 ? "0" : "") + r;
  }

  function wireConfirm(root) {
    var url = root.getAttribute("data-phone-poll");
    var every = Math.max(parseFloat(root.getAttribute("data-poll-seconds")) || 1.5, 0.5) * 1000;
    var left = parseInt(root.getAttribute("data-seconds-left"), 10);
    var deadline = isNaN(left) ? null : Date.now() + left * 1000;
    var countdown = root.querySelector("[data-countdown]");
    var countdownValue = root.querySelector("[data-countdown-value]");
    var summary = root.querySelector("[data-phone-summary]");
    var actions = root.querySelector("[data-phone-actions]");
    var back = root.querySelector("[data-back]");
    var open = root.querySelector("[data-phone-open]");
    var spinner = root.querySelector("h1 .spinner");
    var timer = null;
    var ticking = null;
    var busy = false;

    function msg(name) {
      return root.getAttribute("data-msg-" + name) || "";
    }

    function tick() {
      if (deadline === null || !countdown) { return; }
      countdown.hidden = false;
      countdownValue.textContent = clock((deadline - Date.now()) / 1000);
    }

    function finish() {
      root.setAttribute("data-state", "done");
      if (timer) { clearInterval(timer); }
      if (ticking) { clearInterval(ticking); }
      if (countdown) { countdown.hidden = true; }
      if (actions) { actions.hidden = true; }
      if (open) { open.hidden = true; }
      if (spinner) { spinner.remove(); }
      if (back) { back.hidden = false; }
    }

    function show(data) {
      data.items.forEach(function (item) {
        var row = root.querySelector('[data-request-id="' + item.request_id + '"]');
        if (!row) { return; }
        row.className = "phone-item is-" + item.status;
        row.setAttribute("data-status", item.status);
        row.querySelector("[data-item-status]").textContent = msg(item.status) || item.status;
        row.querySelector("[data-item-reason]").textContent = item.status === "failed" ? item.message : "";
      });
      if (data.seconds_left !== null && data.seconds_left !== undefined) {
        deadline = Date.now() + data.seconds_left * 1000;
      }
      if (data.provider_error) {
        summary.textContent = data.provider_error;
      }
      if (data.done) {
        var ending = { expired: "expired-all", declined: "declined-all", failed: "failed-all" }[data.phone];
        summary.textContent = ending ? msg(ending) : msg("all-done");
        finish();
      }
    }

    function poll() {
      if (busy) { return; }
      busy = true;
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrf(), "Accept": "application/json" }
      }).then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      }).then(show).catch(function () {
        summary.textContent = msg("offline");
      }).then(function () { busy = false; });
    }

    if (root.getAttribute("data-state") === "done") { return; }
    tick();
    ticking = setInterval(tick, 500);
    timer = setInterval(poll, every);
    poll();
  }

  function wireMeeting(form) {
    var all = form.querySelector("[data-select-all]");
    var boxes = Array.prototype.slice.call(form.querySelectorAll('input[name="document"]:not(:disabled)'));
    var button = form.querySelector('button[type="submit"]');
    var label = button ? button.textContent : "";
    function update() {
      var n = boxes.filter(function (b) { return b.checked; }).length;
      if (button) { button.textContent = n ? label + " (" + n + ")" : label; }
      if (all) { all.checked = n > 0 && n === boxes.length; }
    }
    if (all) {
      all.addEventListener("change", function () {
        boxes.forEach(function (b) { b.checked = all.checked; });
        update();
      });
    }
    boxes.forEach(function (b) { b.addEventListener("change", update); });
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-phone-poll]"), wireConfirm);
    Array.prototype.forEach.call(document.querySelectorAll("[data-meeting-form]"), wireMeeting);
  });
}());
