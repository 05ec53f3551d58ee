/* Live updates of new work: the page asks /live/status every few seconds whether the officer's
 * work changed (an unchanged answer is a bodiless 304), updates the badges of the menu,
 * announces new work politely and refreshes the inbox's lists in place, without a reload.
 * It waits while the tab is hidden, backs off when the server does not answer, and stops
 * when the session has ended. */
(function () {
  "use strict";

  var root = document.getElementById("live");
  if (!root || !window.fetch || !window.DOMParser) {
    return;
  }
  var url = root.getAttribute("data-live-url");
  var cursor = root.getAttribute("data-live-cursor") || "";
  var base = Math.max(2, parseInt(root.getAttribute("data-live-poll"), 10) || 20) * 1000;
  var longest = 5 * 60 * 1000;
  var delay = base;
  var timer = null;
  var etag = null;
  var busy = false;
  var stopped = false;
  var counts = { inbox: parseInt(root.getAttribute("data-live-inbox"), 10), unread: null };
  if (isNaN(counts.inbox)) {
    counts.inbox = null;
  }

  function message(kind) {
    return root.getAttribute("data-msg-" + kind.replace(/_/g, "-")) || root.getAttribute("data-msg-assigned");
  }

  function schedule(ms) {
    window.clearTimeout(timer);
    timer = null;
    if (stopped || document.hidden) {
      return;
    }
    // a little jitter, so that pages opened together do not ask together
    timer = window.setTimeout(poll, ms * (0.9 + Math.random() * 0.2));
  }

  function setCount(name, value) {
    var nodes = document.querySelectorAll('[data-live-count="' + name + '"]');
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].textContent = String(value);
      nodes[i].hidden = !value;
    }
  }

  function announce(items) {
    var first = items[0];
    root.textContent = "";
    var text = document.createElement("span");
    text.textContent = message(first.kind) + ": ";
    var link = document.createElement("a");
    link.href = first.url;
    link.textContent = first.title;
    root.appendChild(text);
    root.appendChild(link);
    if (items.length > 1) {
      var more = document.createElement("span");
      more.textContent = " " + (root.getAttribute("data-msg-more") || "(+%(count)s)").replace("%(count)s", String(items.length - 1));
      root.appendChild(more);
    }
    var close = document.createElement("button");
    close.type = "button";
    close.className = "live-close";
    close.setAttribute("aria-label", root.getAttribute("data-msg-close") || "×");
    close.textContent = "×";
    close.addEventListener("click", function () {
      root.textContent = "";
    });
    root.appendChild(close);
  }

  function refreshRegions() {
    var regions = document.querySelectorAll("[data-live-refresh]");
    if (!regions.length) {
      return;
    }
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok || response.redirected) {
          throw new Error("page " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        for (var i = 0; i < regions.length; i++) {
          var old = regions[i];
          var name = old.getAttribute("data-live-refresh");
          var replacement = page.querySelector('[data-live-refresh="' + name + '"]');
          // never pull a form from under the officer's fingers
          if (!replacement || old.contains(document.activeElement)) {
            continue;
          }
          var known = {};
          var links = old.querySelectorAll("a[href]");
          for (var j = 0; j < links.length; j++) {
            known[links[j].getAttribute("href")] = true;
          }
          var newLinks = replacement.querySelectorAll("[data-live-item] a[href]");
          for (var k = 0; k < newLinks.length; k++) {
            if (!known[newLinks[k].getAttribute("href")]) {
              newLinks[k].closest("[data-live-item]").classList.add("is-new");
            }
          }
          old.replaceWith(document.importNode(replacement, true));
        }
        document.documentElement.setAttribute("data-live-refreshed", String(Date.now()));
      })
      .catch(function () {
        /* the next change refreshes again */
      });
  }

  function apply(state) {
    var inboxChanged = counts.inbox !== null && counts.inbox !== state.inbox;
    counts.inbox = state.inbox;
    counts.unread = state.unread;
    setCount("inbox", state.inbox);
    setCount("unread", state.unread);
    var moved = state.cursor !== cursor;
    cursor = state.cursor;
    if (state["new"] && state["new"].length) {
      announce(state["new"]);
    }
    if (moved || inboxChanged || (state["new"] && state["new"].length)) {
      refreshRegions();
    }
  }

  function poll() {
    if (busy || stopped) {
      return;
    }
    busy = true;
    var headers = { Accept: "application/json" };
    if (etag) {
      headers["If-None-Match"] = etag;
    }
    fetch(url + "?since=" + encodeURIComponent(cursor), { credentials: "same-origin", cache: "no-store", headers: headers })
      .then(function (response) {
        if (response.status === 304) {
          delay = base;
          return null;
        }
        if (response.status === 401 || response.status === 403) {
          stopped = true;  // signed out or expired: the next page load asks to sign in
          return null;
        }
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        etag = response.headers.get("ETag");
        delay = base;
        return response.json();
      })
      .then(function (state) {
        if (state) {
          apply(state);
        }
      })
      .catch(function () {
        delay = Math.min(delay * 2, longest);
      })
      .then(function () {
        busy = false;
        schedule(delay);
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      window.clearTimeout(timer);
      timer = null;
    } else {
      poll();
    }
  });
  window.addEventListener("online", function () {
    delay = base;
    poll();
  });
  schedule(base);
})();
