/**
 * Where the CPU went during a measured window, from Linux's /proc (elsewhere: undefined, and the
 * bench reports no CPU figures): the server process split into its main thread (HTTP, JSON,
 * Nest, logging, the scheduler) and its other threads (libuv, GC) with its child processes (the
 * model instances, each a session worker process), the load
 * generator (the bench process, or the child process of a gRPC load) and the whole machine. For
 * the main thread it also reads how long it was runnable but waiting for a CPU
 * (/proc/.../schedstat): on-CPU + waiting near 100% means the main thread always had work, i.e.
 * the server was main-thread bound, even when other threads took its CPU part of the time.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { childProcessesOf } from './child-processes.js';

/** Linux reports /proc/.../stat CPU times in clock ticks of USER_HZ, 100 on every mainstream build. */
const NS_PER_TICK = 10_000_000;

interface ThreadTimes {
  /** On a CPU, ns. */
  readonly runNs: number;
  /** Runnable but waiting for a CPU, ns (undefined without schedstat). */
  readonly waitNs?: number;
}

/** schedstat: "<ns on cpu> <ns waiting on a run queue> <timeslices>"; else utime + stime of stat. */
function threadTimes(dir: string): ThreadTimes | undefined {
  try {
    const [run, wait] = readFileSync(`${dir}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isFinite(run) && Number.isFinite(wait)) return { runNs: run!, waitNs: wait! };
  } catch {
    // no schedstat: fall back to stat
  }
  try {
    const line = readFileSync(`${dir}/stat`, 'utf8');
    const fields = line.slice(line.lastIndexOf(')') + 2).split(' '); // fields 14 and 15 are utime and stime
    return { runNs: (Number(fields[11]) + Number(fields[12])) * NS_PER_TICK };
  } catch {
    return undefined; // the thread ended
  }
}

interface ProcessTimes {
  readonly main: ThreadTimes;
  /** On-CPU ns of every other thread, its child processes' included. */
  readonly otherRunNs: number;
}

/** On-CPU ns of every thread of a process. */
function allThreadsRunNs(pid: number): number {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0; // it ended
  }
  return tids.reduce((sum, tid) => sum + (threadTimes(`/proc/${pid}/task/${tid}`)?.runNs ?? 0), 0);
}

function processTimes(pid: number): ProcessTimes | undefined {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  let main: ThreadTimes | undefined;
  let otherRunNs = 0;
  for (const tid of tids) {
    const times = threadTimes(`/proc/${pid}/task/${tid}`);
    if (!times) continue;
    if (Number(tid) === pid) main = times;
    else otherRunNs += times.runNs;
  }
  for (const child of childProcessesOf(pid)) otherRunNs += allThreadsRunNs(child);
  return main && { main, otherRunNs };
}

/** Busy and total ticks of all CPUs together (first line of /proc/stat). */
function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const values = line.trim().split(/\s+/).slice(1, 9).map(Number); // user nice system idle iowait irq softirq steal
    const total = values.reduce((a, b) => a + b, 0);
    return { busy: total - values[3]! - values[4]!, total };
  } catch {
    return undefined;
  }
}

/** CPU use over a window, in cores (1.0 = one CPU busy the whole window). */
export interface CpuUse {
  /** The server's main thread on a CPU. */
  readonly serverMainThread: number;
  /** The server's main thread runnable but waiting for a CPU (undefined without schedstat). */
  readonly serverMainThreadWaiting?: number;
  readonly serverOtherThreads: number;
  /** The load generator: the bench process (autocannon or the paced client) or the gRPC load child process, all threads. */
  readonly loadGenerator: number;
  /** Fraction of all the machine's CPUs that were busy, whoever used them. */
  readonly machineBusyFraction: number;
  /** CPU time of the server's main thread over the window, ms (divide by the requests served). */
  readonly serverMainThreadMs: number;
  /** CPU time of the server's other threads and child processes (the model instances) over the window, ms. */
  readonly serverOtherThreadsMs: number;
}

export class CpuWindow {
  private readonly startedAt = performance.now();
  private readonly benchStart = process.cpuUsage();
  private readonly machineStart = machineTicks();
  private readonly serverStart: ProcessTimes | undefined;
  private readonly loadStart: ProcessTimes | undefined;

  /** Without `loadGeneratorPid`, the load generator is the bench process itself. */
  constructor(
    private readonly serverPid: number | undefined,
    private readonly loadGeneratorPid?: number,
  ) {
    this.serverStart = serverPid === undefined ? undefined : processTimes(serverPid);
    this.loadStart = loadGeneratorPid === undefined ? undefined : processTimes(loadGeneratorPid);
  }

  /** Ends the window; undefined when the figures cannot be read. */
  stop(): CpuUse | undefined {
    const elapsedMs = performance.now() - this.startedAt;
    const bench = process.cpuUsage(this.benchStart);
    const machine = machineTicks();
    const server = this.serverPid === undefined ? undefined : processTimes(this.serverPid);
    const load = this.loadGeneratorPid === undefined ? undefined : processTimes(this.loadGeneratorPid);
    if (!machine || !this.machineStart || elapsedMs <= 0) return undefined;
    if (this.serverPid !== undefined && (!server || !this.serverStart)) return undefined;
    if (this.loadGeneratorPid !== undefined && (!load || !this.loadStart)) return undefined;
    const totalNs = (times: ProcessTimes): number => times.main.runNs + times.otherRunNs;
    const cores = (ns: number): number => ns / 1e6 / elapsedMs;
    const mainRunNs = server && this.serverStart ? server.main.runNs - this.serverStart.main.runNs : 0;
    const waitStart = this.serverStart?.main.waitNs;
    const waitEnd = server?.main.waitNs;
    return {
      serverMainThread: cores(mainRunNs),
      serverMainThreadWaiting: waitStart !== undefined && waitEnd !== undefined ? cores(waitEnd - waitStart) : undefined,
      serverOtherThreads: server && this.serverStart ? cores(server.otherRunNs - this.serverStart.otherRunNs) : 0,
      loadGenerator: load && this.loadStart ? cores(totalNs(load) - totalNs(this.loadStart)) : (bench.user + bench.system) / 1000 / elapsedMs,
      machineBusyFraction: (machine.busy - this.machineStart.busy) / Math.max(1, machine.total - this.machineStart.total),
      serverMainThreadMs: mainRunNs / 1e6,
      serverOtherThreadsMs: server && this.serverStart ? (server.otherRunNs - this.serverStart.otherRunNs) / 1e6 : 0,
    };
  }
}
