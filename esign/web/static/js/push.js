/* "Enable notifications on this phone": registers the service worker (/sw.js), asks the
 * browser's permission, subscribes with the server's VAPID key and hands the subscription to
 * the server; "turn off" does the reverse. Every outcome is said in the status line. */
(function () {
  "use strict";

  var box = document.querySelector("[data-push]");
  if (!box) {
    return;
  }
  var status = box.querySelector("[data-push-state]");
  var enable = box.querySelector("[data-push-enable]");
  var disable = box.querySelector("[data-push-disable]");
  var csrf = document.querySelector('meta[name="csrf-token"]');
  var registration = null;

  function say(key, detail) {
    var text = box.getAttribute("data-msg-" + key) || key;
    status.textContent = detail ? text + " (" + detail + ")" : text;
    box.setAttribute("data-push-status", key);
  }

  function show(subscribed) {
    enable.hidden = subscribed;
    disable.hidden = !subscribed;
  }

  function keyBytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    b64 += "===".slice((b64.length + 3) % 4);
    var raw = window.atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      out[i] = raw.charCodeAt(i);
    }
    return out;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf ? csrf.content : "" },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          throw new Error(data.message || String(response.status));
        }
        return data;
      });
    });
  }

  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    say(window.isSecureContext ? "unsupported" : "insecure");
    return;
  }

  navigator.serviceWorker.register(box.getAttribute("data-sw-url"), { scope: "/" })
    .then(function (reg) {
      registration = reg;
      box.setAttribute("data-sw", "registered");
      return reg.pushManager.getSubscription();
    })
    .then(function (subscription) {
      show(!!subscription);
      if (Notification.permission === "denied") {
        say("denied");
      } else {
        say(subscription ? "on" : "off");
      }
    })
    .catch(function (error) {
      say("failed", error && error.name);
    });

  enable.addEventListener("click", function () {
    if (!registration) {
      say("failed");
      return;
    }
    enable.disabled = true;
    say("asking");
    Notification.requestPermission()
      .then(function (permission) {
        if (permission !== "granted") {
          say("denied");
          throw null;
        }
        return fetch(box.getAttribute("data-key-url"), { credentials: "same-origin", headers: { Accept: "application/json" } });
      })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        return response.json();
      })
      .then(function (data) {
        return registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(data.publicKey) });
      })
      .then(function (subscription) {
        return post(box.getAttribute("data-subscribe-url"), subscription.toJSON());
      })
      .then(function () {
        show(true);
        say("on");
        window.location.reload();
      })
      .catch(function (error) {
        if (error) {
          say("failed", error.name === "Error" ? error.message : error.name);
        }
      })
      .then(function () {
        enable.disabled = false;
      });
  });

  disable.addEventListener("click", function () {
    if (!registration) {
      return;
    }
    disable.disabled = true;
    registration.pushManager.getSubscription()
      .then(function (subscription) {
        if (!subscription) {
          return null;
        }
        var endpoint = subscription.endpoint;
        return subscription.unsubscribe().then(function () {
          return post(box.getAttribute("data-unsubscribe-url"), { endpoint: endpoint });
        });
      })
      .then(function () {
        show(false);
        say("off");
        window.location.reload();
      })
      .catch(function (error) {
        say("failed", error && error.message);
      })
      .then(function () {
        disable.disabled = false;
      });
  });
})();
