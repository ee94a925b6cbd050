/** The settings every scenario runs with, decided once in index.ts. */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The repository root (bench/..). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** bench/ itself. */
export const BENCH_DIR = join(ROOT, 'bench');

export interface BenchConfig {
  rounds: number;
  /** Seconds of each measured window. */
  durationS: number;
  /** Seconds of the warm-up run before each window. */
  warmupS: number;
  /** wrk connections for throughput runs. */
  connections: number;
  /** taskset CPU list for the servers (fronts, handlers, services), or undefined when not pinning. */
  serverCpus: string | undefined;
  /** taskset CPU list for wrk, or undefined when not pinning. */
  loadCpus: string | undefined;
  /** The built m2gate CLI (dist/cli/m2gate.js unless --dist says otherwise). */
  m2gateBin: string;
  /** Where profiles, chart and logs go. */
  resultsDir: string;
  /** Run m2gate's Node processes under --cpu-prof and summarise the profiles. */
  profile: boolean;
  /** Keep each variant's temp directory (config, logs) for inspection. */
  keepLogs: boolean;
  /** --quick: scenarios may also drop their context-only variants to stay under 2 minutes. */
  quick: boolean;
  /** n of /svc/fib/:n (--fib); undefined: calibrated to about 2 ms at run time. */
  fibN: number | undefined;
  /** Requests sent through the gateway before the memory scenario's last reading. */
  memoryRequests: number;
  log: (line: string) => void;
  /** Server processes run under this command line (bench:instructions: valgrind --tool=callgrind …); default none. */
  wrap?: string[];
}
