// The licence verifier's service worker (scope /licences/): it keeps the verifier page, its scripts and styles,
// and the published public keys and licence types in a cache, so that a phone which opened /licences/verify once
// opens it and verifies a QR code later with no network and no server. Network first (a new key or a new page
// is taken as soon as the server answers), the cache when the network fails or takes longer than 4 s.
// The server fills in VERSION from the shell's content: a new release gives a new worker and a fresh cache.
const VERSION = "cb-verify-__VERSION__";
const SHELL = ["/licences/verify", "/licences/verify?lang=en", "/assets/citybase/app.css", "/assets/citybase/ops.css",
               "/assets/citybase/favicon.svg", "/assets/citybase/ops.js", "/assets/citybase/licences_verify.js",
               "/api/v1/licences/keys", "/api/v1/licences/types"];
const KEPT = new Set(SHELL);

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(VERSION).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n.startsWith("cb-verify-") && n !== VERSION).map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

function keyOf(url) {
  // the verifier in either language; any other query (or ?lang=zh) is the Chinese page
  if (url.pathname === "/licences/verify") return url.searchParams.get("lang") === "en" ? "/licences/verify?lang=en" : "/licences/verify";
  return url.pathname;
}

function network(request, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timeout")), ms);
    fetch(request).then((r) => { clearTimeout(timer); resolve(r); }, (e) => { clearTimeout(timer); reject(e); });
  });
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  const key = keyOf(url);
  if (!KEPT.has(key)) return;  // everything else goes to the network as usual
  event.respondWith((async () => {
    const cache = await caches.open(VERSION);
    try {
      const fresh = await network(event.request, 4000);
      if (fresh.ok) await cache.put(key, fresh.clone());
      return fresh;
    } catch (e) {
      const kept = await cache.match(key, { ignoreVary: true });
      if (kept) return kept;
      throw e;
    }
  })());
});
