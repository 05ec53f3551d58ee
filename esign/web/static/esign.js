/* esign: small progressive enhancements; every page works without them. */
(function () {
  "use strict";

  // A form marked data-busy shows a spinner and disables its button while the server works
  // (signing can take seconds), and is not sent twice.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    if (!("busy" in form.dataset)) return;
    if (form.classList.contains("is-submitting")) {
      event.preventDefault();
      return;
    }
    form.classList.add("is-submitting");
    var button = event.submitter || form.querySelector("button[type=submit], button:not([type])");
    if (!button) return;
    // disable after the browser has collected the form's data
    window.setTimeout(function () {
      button.disabled = true;
      button.classList.add("is-busy");
      button.setAttribute("aria-busy", "true");
      if (button.dataset.busyText) {
        button.dataset.idleText = button.textContent;
        button.textContent = button.dataset.busyText;
      }
    }, 0);
  });

  // Back/forward cache: a page restored from history must not keep a busy button.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form.is-submitting").forEach(function (form) {
      form.classList.remove("is-submitting");
    });
    document.querySelectorAll("button.is-busy").forEach(function (button) {
      button.disabled = false;
      button.classList.remove("is-busy");
      button.removeAttribute("aria-busy");
      if (button.dataset.idleText) button.textContent = button.dataset.idleText;
    });
  });

  // The state filter applies as soon as it changes.
  document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // A pending signature: ask the server every few seconds; reload when the device has answered.
  var pending = document.querySelectorAll("[data-request-status]");
  if (pending.length && window.fetch) {
    var waiting = Array.prototype.map.call(pending, function (el) { return el.dataset.requestStatus; });
    var poll = function () {
      Promise.all(waiting.map(function (url) {
        return fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : null; })
          .catch(function () { return null; });
      })).then(function (answers) {
        var done = answers.some(function (a) { return a && a.status !== "pending" && a.status !== "prepared"; });
        if (done) window.location.reload();
        else window.setTimeout(poll, 4000);
      });
    };
    window.setTimeout(poll, 4000);
  }
})();
