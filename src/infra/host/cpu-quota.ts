import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/**
 * The CPUs this process may really use: the cgroup v2 quota (`cpu.max`, e.g. `200000 100000` = 2
 * CPUs) when a container sets one, else the CPUs the OS offers. The Node counterpart of aligning
 * GOMAXPROCS with the container quota, so thread pools are not sized for a host's 64 cores.
 */
export function cpuQuota(cpuMaxPath = '/sys/fs/cgroup/cpu.max'): number {
  const cpus = availableParallelism();
  try {
    const [quota, period] = readFileSync(cpuMaxPath, 'utf8').trim().split(/\s+/);
    if (quota === 'max') return cpus;
    const limit = Number(quota) / Number(period);
    return Number.isFinite(limit) && limit > 0 ? Math.max(1, Math.min(cpus, Math.floor(limit))) : cpus;
  } catch {
    return cpus;
  }
}
