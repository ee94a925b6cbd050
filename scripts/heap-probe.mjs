// Preloaded into the m2gate gateway by the load tests and `npm run soak`:
//   node --expose-gc --import ./scripts/heap-probe.mjs dist/cli/m2gate.js start ...
// On SIGUSR2 it runs a full GC (twice: the first can leave weak and finalizable objects for
// the second) and prints one NDJSON line `{"msg":"heap probe","heapUsed":…}` on stdout, so the
// heap growth of the gateway can be measured, not guessed, with no hook in the gateway itself.
// Only the gateway process installs it (`start`/`gateway`): `m2gate start` passes its
// execArgv to the service processes it spawns, and they ignore it.
const command = process.argv[2];
if ((command === 'start' || command === 'gateway') && typeof globalThis.gc === 'function') {
  const gc = globalThis.gc;
  process.on('SIGUSR2', () => {
    gc();
    gc();
    const m = process.memoryUsage();
    process.stdout.write(
      `${JSON.stringify({ msg: 'heap probe', pid: process.pid, heapUsed: m.heapUsed, heapTotal: m.heapTotal, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers })}\n`,
    );
  });
}
