/**
 * A small parser of Prometheus' text exposition format (version 0.0.4), for tests: each sample line
 * `name{label="value",...} value [timestamp]` becomes a {@link Sample}; comments (`# HELP`, `# TYPE`)
 * and blank lines are skipped. Label values are unescaped (`\\`, `\"`, `\n`). Throws on a line it
 * cannot read, so that a malformed exposition fails the test that scraped it.
 */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    try {
      samples.push(parseLine(line));
    } catch (error) {
      throw new Error(`line ${index + 1} is not a sample (${(error as Error).message}): ${line}`);
    }
  });
  return samples;
}

function parseLine(line: string): Sample {
  const name = NAME.exec(line)?.[0];
  if (!name) throw new Error('no metric name');
  let at = name.length;
  const labels: Record<string, string> = {};
  if (line[at] === '{') {
    at++;
    for (;;) {
      while (line[at] === ' ') at++;
      if (line[at] === '}') {
        at++;
        break;
      }
      const label = LABEL_NAME.exec(line.slice(at))?.[0];
      if (!label) throw new Error(`no label name at column ${at}`);
      at += label.length;
      if (line[at] !== '=' || line[at + 1] !== '"') throw new Error(`no ="value" after label '${label}'`);
      at += 2;
      let value = '';
      for (;;) {
        const c = line[at++];
        if (c === undefined) throw new Error(`label '${label}': unterminated value`);
        if (c === '"') break;
        if (c === '\\') {
          const escaped = line[at++];
          value += escaped === 'n' ? '\n' : escaped === '\\' ? '\\' : escaped === '"' ? '"' : `\\${escaped ?? ''}`;
        } else value += c;
      }
      if (label in labels) throw new Error(`label '${label}' twice`);
      labels[label] = value;
      while (line[at] === ' ') at++;
      if (line[at] === ',') at++;
      else if (line[at] !== '}') throw new Error(`expected , or } at column ${at}`);
    }
  }
  const rest = line.slice(at).trim().split(/\s+/);
  if (rest.length < 1 || rest.length > 2 || rest[0] === '') throw new Error('expected a value and an optional timestamp');
  return { name, labels, value: parseValue(rest[0]!) };
}

/** Like Prometheus (Go's ParseFloat), NaN and Inf in any case: prom-client writes NaN as `Nan`. */
function parseValue(text: string): number {
  const lower = text.toLowerCase();
  if (lower === '+inf' || lower === 'inf') return Infinity;
  if (lower === '-inf') return -Infinity;
  if (lower === 'nan') return NaN;
  const value = Number(text);
  if (Number.isNaN(value)) throw new Error(`'${text}' is not a number`);
  return value;
}

/** A series' identity: its name and its labels, sorted (`name{a="1",b="2"}`). */
export function seriesKey(sample: Pick<Sample, 'name' | 'labels'>): string {
  const labels = Object.keys(sample.labels)
    .sort()
    .map((key) => `${key}=${JSON.stringify(sample.labels[key])}`);
  return `${sample.name}{${labels.join(',')}}`;
}

/**
 * The value of the one sample named `name` whose labels include `labels`; 0 when there is none (a
 * counter or histogram series appears at its first observation). Throws when several match.
 */
export function valueOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  const matching = samplesOf(samples, name, labels);
  if (matching.length > 1) throw new Error(`${matching.length} samples of ${name} match ${JSON.stringify(labels)}: ${matching.map(seriesKey).join(' ')}`);
  return matching[0]?.value ?? 0;
}

/** Every sample named `name` whose labels include `labels`. */
export function samplesOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
}
