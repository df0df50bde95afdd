// `pod heap-dump` and `pod gc` need a live Java or Node.js process in the target container. kwok runs a
// pod's exec on this machine, which runs many Node.js processes (the tests' own), and enabling exec on
// every sandbox pod of the shared control plane proved too slow under CI load. So the sandbox-wide walks
// (registry, fault suite, least-privilege RBAC) leave these two out; their real runs, dry runs, gates,
// compensation, interrupts and RBAC-relevant calls are tested against a real JVM and a real Node.js
// process on a control plane of their own in test/procedures/pod/heap-dump.int.test.ts.
export const NEEDS_LIVE_PROCESS = new Set(['pod heap-dump', 'pod gc']);
