// Preloaded into a server the benchmark did not write (`node --expose-gc --import <this file>
// .output/server/index.mjs`: the nitro-0.3 target's built Nitro server), so that run.mjs can ask
// it for a garbage collection before a memory reading, as it asks bench/proxy.mjs. Answers
// { cmd: 'usage', id, gc } over IPC with process.cpuUsage() and memoryUsage() (run.mjs takes this
// target's CPU and RSS from /proc and compares them with these); exits when run.mjs goes away.
// Does nothing when the process has no IPC channel.
if (process.send) {
  process.on('message', (m) => {
    if (m?.cmd !== 'usage') return
    if (m.gc && globalThis.gc) {
      globalThis.gc()
      globalThis.gc()
    }
    const mem = process.memoryUsage()
    process.send({
      id: m.id,
      cpu: process.cpuUsage(),
      rss: mem.rss,
      heapUsed: mem.heapUsed,
      external: mem.external,
      maxRss: process.resourceUsage().maxRSS * 1024,
    })
  })
  process.on('disconnect', () => process.exit(0))
}
