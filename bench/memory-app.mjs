// The app module of the `memory` scenario, loaded with `m2gate gateway --app`
// (plain JavaScript, so the gateway runs without tsx's loader and its memory).
//   GET /app/hello   a trivial app route
//   GET /app/memory  process.memoryUsage() of the gateway, after a full GC when
//                    the gateway runs with --expose-gc (`gc: true` says it did)
// The gateway exposes no heap figure of its own; this is how the suite reads it.
export default {
  'GET /app/hello': () => 'hello from the gateway\n',
  'GET /app/memory': () => {
    const gc = typeof globalThis.gc === 'function';
    if (gc) globalThis.gc();
    return { ...process.memoryUsage(), gc };
  },
};
