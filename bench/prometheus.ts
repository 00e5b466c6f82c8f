/**
 * The server's Prometheus endpoint as the bench reads it: one GET of the text exposition, and the
 * samples of one metric picked by name and labels (enough of the format for prom-client's output).
 */

export async function fetchMetricsText(url: string): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET ${url} answered ${response.status}: ${text.slice(0, 200)}`);
  return text;
}

export interface Sample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** The samples of `metric` (its exact name: a histogram's `_bucket` series are other names) whose labels include `labels`; non-finite values are left out. */
export function samplesOf(text: string, metric: string, labels: Readonly<Record<string, string>> = {}): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric)) continue;
    const match = SAMPLE_LINE.exec(line);
    if (!match || match[1] !== metric) continue;
    const parsed: Record<string, string> = {};
    for (const [, name, value] of (match[2] ?? '').matchAll(LABEL)) parsed[name!] = value!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    if (Object.entries(labels).some(([name, value]) => parsed[name] !== value)) continue;
    const value = Number(match[3]);
    if (Number.isFinite(value)) samples.push({ labels: parsed, value });
  }
  return samples;
}

/** The sum of {@link samplesOf}'s values (0 when there is no sample). */
export function sampleSum(text: string, metric: string, labels: Readonly<Record<string, string>> = {}): number {
  return samplesOf(text, metric, labels).reduce((sum, sample) => sum + sample.value, 0);
}
