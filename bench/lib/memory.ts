/**
 * Memory of a running process as the memory scenario reads it: resident set
 * size from /proc/<pid>/status (VmRSS, and its peak VmHWM), no inspector.
 */
import { readFileSync } from 'node:fs';

export interface ProcMemory {
  /** Resident set size now, bytes. */
  rss: number;
  /** Peak resident set size so far, bytes. */
  hwm: number;
}

/** Reads VmRSS and VmHWM of `/proc/<pid>/status` text (values in kB). @throws Error when either is missing. */
export function parseProcStatus(text: string): ProcMemory {
  const kb = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(text);
    if (!m) throw new Error(`/proc/<pid>/status has no ${name}`);
    return Number(m[1]) * 1024;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** VmRSS and VmHWM of a live process. @throws Error when it does not exist. */
export function procMemory(pid: number): ProcMemory {
  return parseProcStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
}
