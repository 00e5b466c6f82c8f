import { readdirSync, readFileSync } from 'node:fs';

/**
 * The live child processes of `pid` (Linux: read from /proc), e.g. a server's session workers:
 * one process per model instance. A child that has exited, zombie or reaped, is not listed. (The
 * bench counts their CPU as the server's; the tests check that they end.)
 */
export function childProcessesOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(ppid) === pid && state !== 'Z' && state !== 'X') children.push(Number(entry));
  }
  return children;
}

/** Whether process `pid` still runs (a zombie does not: it computes nothing). */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}
