// Hosts on one machine for test/multihost-netns.test.ts: network namespaces (iproute2, root
// only) joined by veth pairs to a bridge that lives in a namespace of its own, so nothing is
// added to the machine's own network and every address exists only inside the lab. Names carry
// the test's pid, so two runs never collide; teardown() kills what runs inside and deletes the
// namespaces (which deletes their veths), and also runs on process exit if a test forgot it.
import { execFileSync } from 'node:child_process';

/** A private range (RFC 1918) used only inside the lab's namespaces. */
export const LAB_NET = '10.237.0';

export interface LabHost {
  /** e.g. "gw1". */
  name: string;
  /** The namespace: run things in it with `ip netns exec`. */
  ns: string;
  /** Its address on the lab's bridge. */
  ip: string;
}

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** True when this process may create namespaces (root, with iproute2). */
export function canMakeNamespaces(): boolean {
  try {
    return process.getuid?.() === 0 && ip(['-V']).includes('iproute2');
  } catch {
    return false;
  }
}

const PREFIX = 'm2mh-';
const labs = new Set<NetLab>();
process.on('exit', () => {
  for (const lab of labs) lab.teardown();
});

export class NetLab {
  readonly hosts = new Map<string, LabHost>();
  readonly #switch: string;
  readonly #tag: string;
  #nextHost = 10;

  private constructor(tag: string) {
    this.#tag = tag;
    this.#switch = `${PREFIX}${tag}-sw`;
  }

  /** A bridge in its own namespace. Namespaces left by an earlier run that died (its pid gone) are deleted first. */
  static create(): NetLab {
    removeStale();
    const lab = new NetLab(`${process.pid}`);
    labs.add(lab);
    try {
      ip(['netns', 'add', lab.#switch]);
      ip(['-n', lab.#switch, 'link', 'add', 'br0', 'type', 'bridge']);
      ip(['-n', lab.#switch, 'link', 'set', 'br0', 'up']);
    } catch (err) {
      lab.teardown();
      throw err;
    }
    return lab;
  }

  /** A host: its namespace, loopback up, `eth0` on the bridge with the next lab address. */
  host(name: string): LabHost {
    const ns = `${PREFIX}${this.#tag}-${name}`;
    const addr = `${LAB_NET}.${this.#nextHost++}`;
    ip(['netns', 'add', ns]);
    const host: LabHost = { name, ns, ip: addr };
    this.hosts.set(name, host);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    // Created in the switch's namespace with its peer straight in the host's: never in ours.
    ip(['-n', this.#switch, 'link', 'add', `v-${name}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    ip(['-n', this.#switch, 'link', 'set', `v-${name}`, 'master', 'br0', 'up']);
    ip(['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    return host;
  }

  /** `ip -n NS ARGS...` for one of the lab's hosts. */
  ip(host: LabHost, args: string[]): string {
    return ip(['-n', host.ns, ...args]);
  }

  /** A command run to its end inside `host` (tc, a probe). */
  exec(host: LabHost, command: string, args: string[]): string {
    return execFileSync('ip', ['netns', 'exec', host.ns, command, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Kills everything running in the lab's namespaces and deletes them. Safe to call twice. */
  teardown(): void {
    if (!labs.has(this)) return;
    labs.delete(this);
    for (const ns of [...[...this.hosts.values()].map((h) => h.ns), this.#switch]) deleteNamespace(ns);
  }
}

function deleteNamespace(ns: string): void {
  try {
    for (const pid of ip(['netns', 'pids', ns]).split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  } catch {
    // no such namespace
  }
  try {
    ip(['netns', 'del', ns]);
  } catch {
    // no such namespace
  }
}

function removeStale(): void {
  let list: string;
  try {
    list = ip(['netns', 'list']);
  } catch {
    return;
  }
  for (const line of list.split('\n')) {
    const m = /^(m2mh-(\d+)-\S+)/.exec(line);
    if (!m) continue;
    const pid = Number(m[2]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) deleteNamespace(m[1]!);
  }
}

/** Whether the kernel has tc's netem qdisc (many do as a module; some VM kernels are built without it). */
export function hasNetem(lab: NetLab, host: LabHost): boolean {
  try {
    lab.exec(host, 'tc', ['qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms']);
    lab.exec(host, 'tc', ['qdisc', 'del', 'dev', 'lo', 'root']);
    return true;
  } catch {
    return false;
  }
}
