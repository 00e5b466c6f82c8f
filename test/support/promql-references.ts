/**
 * What a PromQL expression (a Grafana panel's `expr`, a rule's `expr`) refers to, read by a small
 * tokenizer rather than a full parser: the metric names of its selectors with their label matchers,
 * the functions and aggregations it calls, the labels it groups or matches on, and the labels it
 * creates with label_replace. Strings, durations, numbers and Grafana variables (`$x`, `${x}`, `[[x]]`)
 * are skipped. A construct it cannot attribute (a selector without a metric name) is an error, so a
 * reference is never silently missed.
 */

export interface LabelMatcher {
  readonly label: string;
  readonly op: '=' | '!=' | '=~' | '!~';
  readonly value: string;
}

export interface SelectorReference {
  readonly metric: string;
  readonly matchers: readonly LabelMatcher[];
}

export interface PromqlReferences {
  readonly selectors: readonly SelectorReference[];
  /** Functions and aggregation operators called (`rate`, `sum`, `histogram_quantile`, ...). */
  readonly functions: ReadonlySet<string>;
  /** Labels named in `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_left/right (...)`. */
  readonly groupingLabels: ReadonlySet<string>;
  /** Destination labels of `label_replace(v, "dst", ...)` and `label_join(v, "dst", ...)`. */
  readonly createdLabels: ReadonlySet<string>;
}

export const PROMQL_AGGREGATIONS: ReadonlySet<string> = new Set([
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio',
]);

export const PROMQL_FUNCTIONS: ReadonlySet<string> = new Set([
  'abs', 'absent', 'absent_over_time', 'ceil', 'changes', 'clamp', 'clamp_max', 'clamp_min', 'day_of_month', 'day_of_week',
  'day_of_year', 'days_in_month', 'delta', 'deriv', 'double_exponential_smoothing', 'exp', 'floor', 'histogram_avg',
  'histogram_count', 'histogram_fraction', 'histogram_quantile', 'histogram_stddev', 'histogram_stdvar', 'histogram_sum',
  'holt_winters', 'hour', 'idelta', 'increase', 'info', 'irate', 'label_join', 'label_replace', 'ln', 'log10', 'log2', 'minute',
  'month', 'predict_linear', 'rate', 'resets', 'round', 'scalar', 'sgn', 'sort', 'sort_by_label', 'sort_by_label_desc', 'sort_desc',
  'sqrt', 'time', 'timestamp', 'vector', 'year', 'avg_over_time', 'min_over_time', 'max_over_time', 'sum_over_time',
  'count_over_time', 'quantile_over_time', 'stddev_over_time', 'stdvar_over_time', 'last_over_time', 'present_over_time',
  'mad_over_time', 'acos', 'acosh', 'asin', 'asinh', 'atan', 'atanh', 'cos', 'cosh', 'sin', 'sinh', 'tan', 'tanh', 'deg', 'rad', 'pi',
]);

const GROUPING_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set([...GROUPING_KEYWORDS, 'bool', 'and', 'or', 'unless', 'offset', 'atan2', 'inf', 'nan', 'start', 'end']);

type Token =
  | { readonly kind: 'ident'; readonly text: string }
  | { readonly kind: 'string'; readonly text: string }
  | { readonly kind: 'matchers'; readonly matchers: LabelMatcher[] }
  | { readonly kind: 'punct'; readonly text: string };

const IDENT = /^[A-Za-z_:][A-Za-z0-9_:]*/;

/** A PromQL string literal's value ("..." with Go escapes, '...', or `...` raw) at the start of `text`. */
function readString(text: string): { value: string; length: number } {
  const quote = text[0]!;
  if (quote === '`') {
    const end = text.indexOf('`', 1);
    if (end < 0) throw new Error(`unterminated string in ${text}`);
    return { value: text.slice(1, end), length: end + 1 };
  }
  let value = '';
  for (let i = 1; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\') {
      const next = text[++i];
      value += next === 'n' ? '\n' : next === 't' ? '\t' : next ?? '';
    } else if (c === quote) {
      return { value, length: i + 1 };
    } else {
      value += c;
    }
  }
  throw new Error(`unterminated string in ${text}`);
}

function parseMatchers(body: string): LabelMatcher[] {
  const matchers: LabelMatcher[] = [];
  let rest = body.trim();
  while (rest !== '') {
    const label = IDENT.exec(rest)?.[0];
    if (!label) throw new Error(`bad label matcher in {${body}}`);
    rest = rest.slice(label.length).trimStart();
    const op = /^(=~|!~|!=|=)/.exec(rest)?.[0] as LabelMatcher['op'] | undefined;
    if (!op) throw new Error(`bad label matcher operator in {${body}}`);
    rest = rest.slice(op.length).trimStart();
    if (!/^["'`]/.test(rest)) throw new Error(`label matcher value must be a string in {${body}}`);
    const { value, length } = readString(rest);
    matchers.push({ label, op, value });
    rest = rest.slice(length).trimStart();
    if (rest.startsWith(',')) rest = rest.slice(1).trimStart();
    else if (rest !== '') throw new Error(`expected "," between label matchers in {${body}}`);
  }
  return matchers;
}

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const rest = expr.slice(i);
    const c = expr[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '#') {
      // A PromQL comment runs to the end of the line.
      const end = expr.indexOf('\n', i);
      i = end < 0 ? expr.length : end;
    } else if (c === '"' || c === "'" || c === '`') {
      const { value, length } = readString(rest);
      tokens.push({ kind: 'string', text: value });
      i += length;
    } else if (c === '{') {
      // Matchers end at the first "}" outside a string.
      let j = 1;
      while (j < rest.length && rest[j] !== '}') j += /["'`]/.test(rest[j]!) ? readString(rest.slice(j)).length : 1;
      if (j >= rest.length) throw new Error(`unterminated {...} in ${expr}`);
      tokens.push({ kind: 'matchers', matchers: parseMatchers(rest.slice(1, j)) });
      i += j + 1;
    } else if (c === '[') {
      // A range or subquery ([5m], [$__rate_interval], [1h:5m]) or a Grafana [[variable]]: no names in it.
      const end = expr.indexOf(']', i);
      if (end < 0) throw new Error(`unterminated [...] in ${expr}`);
      i = end + 1;
      if (expr[i] === ']') i++;
    } else if (c === '$') {
      // A Grafana variable: $name or ${name} / ${name:format}.
      const match = /^\$(\{[^}]*\}|\w+)/.exec(rest);
      if (!match) throw new Error(`bad variable at ${rest}`);
      i += match[0].length;
    } else if (/[0-9.]/.test(c)) {
      // Numbers, durations (5m, 1h30m) and hex literals.
      i += /^(0x[0-9a-fA-F]+|[0-9.]+([eE][-+]?\d+)?[A-Za-z0-9]*)/.exec(rest)![0].length;
    } else if (IDENT.test(rest)) {
      const text = IDENT.exec(rest)![0];
      tokens.push({ kind: 'ident', text });
      i += text.length;
    } else {
      tokens.push({ kind: 'punct', text: c });
      i++;
    }
  }
  return tokens;
}

/** The references of one PromQL expression. */
export function promqlReferences(expr: string): PromqlReferences {
  const tokens = tokenize(expr);
  const selectors: SelectorReference[] = [];
  const functions = new Set<string>();
  const groupingLabels = new Set<string>();
  const createdLabels = new Set<string>();
  const isOpenParen = (t: Token | undefined): boolean => t?.kind === 'punct' && t.text === '(';

  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.kind === 'matchers') {
      // A selector with no metric name before it: only {__name__="x"} names one.
      const name = token.matchers.find((m) => m.label === '__name__' && m.op === '=');
      if (!name) throw new Error(`a selector without a metric name cannot be attributed: ${expr}`);
      selectors.push({ metric: name.value, matchers: token.matchers.filter((m) => m !== name) });
      continue;
    }
    if (token.kind !== 'ident') continue;
    const next = tokens[i + 1];
    if (GROUPING_KEYWORDS.has(token.text.toLowerCase())) {
      if (!isOpenParen(next)) continue; // group_left / group_right without a label list
      let j = i + 2;
      for (; j < tokens.length && !(tokens[j]!.kind === 'punct' && (tokens[j] as { text: string }).text === ')'); j++) {
        const label = tokens[j]!;
        if (label.kind === 'ident') groupingLabels.add(label.text);
      }
      i = j;
      continue;
    }
    if (KEYWORDS.has(token.text.toLowerCase())) continue;
    // A call: `f(`, or an aggregation with its grouping first (`sum by (le) (...)`).
    const groupingFirst = next?.kind === 'ident' && /^(by|without)$/i.test(next.text);
    if (isOpenParen(next) || groupingFirst) {
      functions.add(token.text);
      if (token.text === 'label_replace' || token.text === 'label_join') {
        // The destination label is the first string argument of the call.
        const dst = tokens.slice(i + 2).find((t) => t.kind === 'string');
        if (dst?.kind === 'string') createdLabels.add(dst.text);
      }
      continue;
    }
    const matchers = next?.kind === 'matchers' ? next.matchers : [];
    if (next?.kind === 'matchers') i++;
    selectors.push({ metric: token.text, matchers });
  }
  return { selectors, functions, groupingLabels, createdLabels };
}

/** The metric names an expression selects, deduplicated. */
export function metricNames(expr: string): string[] {
  return [...new Set(promqlReferences(expr).selectors.map((s) => s.metric))];
}

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'] as const;

/** The histogram (or summary) a series name belongs to, if it has a histogram suffix: `x_bucket` -> `x`. */
export function histogramBase(name: string): string | undefined {
  const suffix = HISTOGRAM_SUFFIXES.find((s) => name.endsWith(s));
  return suffix ? name.slice(0, -suffix.length) : undefined;
}
