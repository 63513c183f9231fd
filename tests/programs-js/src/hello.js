// A wasi:http handler in JavaScript, componentized with `jco componentize`
// (componentize-js, on the StarlingMonkey engine) against the proxy world in
// ../wit. StarlingMonkey implements `wasi:http/incoming-handler` by
// dispatching each request as a `fetch` event, as in a service worker.
//
// Routes (any method):
// - `/` answers `Hello from jco!`.
// - `/info` answers the request's method and path, e.g. `POST /info`.
// - anything else is a 404.

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

/**
 * @param {Request} request
 * @returns {Response}
 */
function handle(request) {
  const { pathname } = new URL(request.url);
  const text = { "content-type": "text/plain" };
  switch (pathname) {
    case "/":
      return new Response("Hello from jco!\n", { headers: text });
    case "/info":
      return new Response(`${request.method} ${pathname}\n`, { headers: text });
    default:
      return new Response("not found\n", { status: 404, headers: text });
  }
}
