/* esign service worker: shows the Web Push messages the server sends when new work arrives.
 * A message carries a title, the document's title and its address; clicking it opens the
 * document in this app (never another site). Nothing is cached: pages show personal work. */
"use strict";

self.addEventListener("install", function () {
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(self.clients.claim());
});

function sameOrigin(url) {
  // only the path of the address is kept: a click always stays on this app
  try {
    var parsed = new URL(url, self.location.origin);
    return new URL(parsed.pathname + parsed.search, self.location.origin).href;
  } catch (e) {
    return new URL("/", self.location.origin).href;
  }
}

self.addEventListener("push", function (event) {
  var data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (e) {
    data = {};
  }
  var title = typeof data.title === "string" && data.title ? data.title : "esign";
  event.waitUntil(self.registration.showNotification(title, {
    body: typeof data.body === "string" ? data.body : "",
    tag: typeof data.tag === "string" ? data.tag : "esign",
    renotify: true,
    icon: "/static/favicon.svg",
    lang: "vi",
    data: { url: sameOrigin(typeof data.url === "string" ? data.url : "/") }
  }));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var target = (event.notification.data && event.notification.data.url) || sameOrigin("/");
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (list) {
    for (var i = 0; i < list.length; i++) {
      if (list[i].url === target && "focus" in list[i]) {
        return list[i].focus();
      }
    }
    return self.clients.openWindow(target);
  }));
});
