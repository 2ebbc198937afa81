// Runs a Nitro `deno-deploy` build under Deno on 127.0.0.1 and a free port: the build's entry
// calls `Deno.serve(handler)` with no address (Deno Deploy chooses it), so this wraps
// `Deno.serve` before importing it. Prints `Listening on http://127.0.0.1:<port>/`.
// Usage: deno run -A deno-deploy-serve.mjs <path to server/index.ts>
const [entry] = Deno.args
const serve = Deno.serve
Deno.serve = (...args) => {
  const handler = args.find(arg => typeof arg === 'function') ?? args[0]?.handler
  return serve({
    hostname: '127.0.0.1',
    port: 0,
    onListen: ({ port }) => console.log(`Listening on http://127.0.0.1:${port}/`),
  }, handler)
}
await import(new URL(entry, `file://${Deno.cwd()}/`).href)
