/**
 * Summarises V8 .cpuprofile files (written by `node --cpu-prof`): self time
 * per function and per area (m2gate source folder, a dependency, node
 * internals, GC, idle), so a report can say what dominates a process's CPU.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileEntry {
  name: string;
  /** Share of the non-idle samples, 0..1. */
  share: number;
}

export interface ProfileSummary {
  file: string;
  /** Microseconds of samples that were not idle. */
  busyUs: number;
  idleShare: number;
  topFunctions: ProfileEntry[];
  areas: ProfileEntry[];
}

/** Where a frame's code lives: an m2gate folder, a package, node internals, or a V8 pseudo-frame. */
export function areaOf(url: string, functionName: string): string {
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(program)') return 'native (program)';
    return `native ${functionName || '(anonymous)'}`;
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return `node ${url.slice(5).split('/')[0]}`;
  // One level of subfolder (gateway/handler/) counts as its parent folder.
  const own = /\/(protocol|gateway|workers|zmq|cli|bench)\/(?:[^/]+\/)?[^/]+$/.exec(url);
  if (own) return `m2gate ${own[1]}/`;
  return url.split('/').slice(-1)[0] ?? url;
}

function top(map: Map<string, number>, total: number, n: number): ProfileEntry[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, us]) => ({ name, share: total > 0 ? us / total : 0 }));
}

/** @throws Error when the file is not a readable .cpuprofile. */
export function summariseProfile(file: string, topN = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const fns = new Map<string, number>();
  const areas = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)?.callFrame;
    if (!frame) continue;
    if (frame.functionName === '(idle)') {
      idle += us;
      continue;
    }
    busy += us;
    const file = frame.url.split('/').slice(-1)[0] ?? '';
    const name = `${frame.functionName || '(anonymous)'}${file ? ` ${file}:${frame.lineNumber + 1}` : ''}`;
    fns.set(name, (fns.get(name) ?? 0) + us);
    const area = areaOf(frame.url, frame.functionName);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  return { file, busyUs: busy, idleShare: busy + idle > 0 ? idle / (busy + idle) : 0, topFunctions: top(fns, busy, topN), areas: top(areas, busy, topN) };
}

/** A printable block for one profile. */
export function formatProfile(s: ProfileSummary, label: string): string {
  const pct = (x: number): string => `${(x * 100).toFixed(1).padStart(5)}%`;
  const lines = [`${label}: ${(s.busyUs / 1e6).toFixed(2)} s busy, ${pct(s.idleShare).trim()} idle  (${s.file})`, '  by area:'];
  for (const a of s.areas) lines.push(`    ${pct(a.share)}  ${a.name}`);
  lines.push('  top functions (self time):');
  for (const f of s.topFunctions) lines.push(`    ${pct(f.share)}  ${f.name}`);
  return lines.join('\n');
}

/** Summaries of the profiles written under profiles/<tag>-r<round>/ (main thread and worker threads). */
export function profileSummaries(resultsDir: string, tagPrefix: string): Array<{ label: string; summary: ProfileSummary }> {
  const root = join(resultsDir, 'profiles');
  if (!existsSync(root)) return [];
  const out: Array<{ label: string; summary: ProfileSummary }> = [];
  for (const dir of readdirSync(root).filter((d) => d.startsWith(tagPrefix)).sort()) {
    for (const file of readdirSync(join(root, dir)).filter((f) => f.endsWith('.cpuprofile')).sort()) {
      // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread.
      const thread = file.split('.')[4];
      out.push({ label: `${dir} ${thread === '0' ? 'main thread' : `worker thread ${thread ?? '?'}`}`, summary: summariseProfile(join(root, dir, file)) });
    }
  }
  return out;
}
