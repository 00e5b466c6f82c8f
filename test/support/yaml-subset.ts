/**
 * A YAML reader for the subset the deployment files under docker/ use (no YAML library is installed):
 * block mappings and sequences (`- key: value` included), plain, single- and double-quoted scalars,
 * block scalars (`|`, `>`, with `-`/`+` chomping), one-line flow collections (`[a, "b"]`, `{}`) and
 * comments. Anything else (anchors, aliases, tags, several documents, multi-line plain or flow
 * values, tabs in indentation, duplicate keys) is an error naming the line, never a silent misread.
 * Plain scalars resolve as in YAML 1.2's core schema: null, booleans, numbers, else strings.
 */
export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

export function parseYaml(text: string): YamlValue {
  return new YamlSubsetParser(text).document();
}

/** The line with its comment removed (a `#` at the start or after a blank, outside quotes). */
function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") {
      // A quote opens a quoted scalar only at the start of a value, not inside a plain one (it's).
      if (i === 0 || /[\s[{,:-]/.test(line[i - 1]!)) quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) {
      return line.slice(0, i).trimEnd();
    }
  }
  return line.trimEnd();
}

/** Where a block mapping's `key:` ends (the colon followed by a blank or the end), outside quotes; -1 if none. */
function mappingColon(content: string): number {
  let quote: string | undefined;
  for (let i = 0; i < content.length; i++) {
    const c = content[i]!;
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
    } else if ((c === '"' || c === "'") && i === 0) {
      quote = c;
    } else if (c === '[' || c === '{') {
      if (i === 0) return -1; // a flow collection, not a key
    } else if (c === ':' && (i + 1 === content.length || content[i + 1] === ' ')) {
      return i;
    }
  }
  return -1;
}

function resolvePlain(text: string): YamlValue {
  if (text === '' || text === '~' || text === 'null' || text === 'Null' || text === 'NULL') return null;
  if (/^(true|True|TRUE)$/.test(text)) return true;
  if (/^(false|False|FALSE)$/.test(text)) return false;
  if (/^[-+]?\d+$/.test(text)) return Number.parseInt(text, 10);
  if (/^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$/.test(text)) return Number.parseFloat(text);
  return text;
}

class YamlSubsetParser {
  private readonly lines: string[];
  private index = 0;

  constructor(text: string) {
    this.lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  }

  document(): YamlValue {
    const first = this.nextSignificant();
    if (first === undefined) return null;
    const value = this.node(this.indentOf(first));
    const rest = this.nextSignificant();
    if (rest !== undefined) this.fail(rest, 'content after the end of the document (bad indentation?)');
    return value;
  }

  // ---- lines ----

  /** The index of the next line with content (comments and blanks skipped), without consuming it. */
  private nextSignificant(): number | undefined {
    while (this.index < this.lines.length) {
      const line = this.lines[this.index]!;
      if (stripComment(line).trim() !== '') {
        if (/^\s*\t/.test(line)) this.fail(this.index, 'tab in indentation');
        if (/^(---|\.\.\.)(\s|$)/.test(line)) this.fail(this.index, 'document markers (one document per file only)');
        return this.index;
      }
      this.index++;
    }
    return undefined;
  }

  private indentOf(at: number): number {
    return this.lines[at]!.search(/\S/);
  }

  private content(at: number): string {
    return stripComment(this.lines[at]!).trim();
  }

  private fail(at: number, message: string): never {
    throw new Error(`YAML line ${at + 1}: ${message}: ${JSON.stringify(this.lines[at])}`);
  }

  // ---- block structure ----

  /** The block node whose first line is the next significant line, at exactly `indent`. */
  private node(indent: number): YamlValue {
    const at = this.nextSignificant()!;
    return this.isSequenceEntry(this.content(at)) ? this.sequence(indent) : this.mapping(indent);
  }

  private isSequenceEntry(content: string): boolean {
    return content === '-' || content.startsWith('- ');
  }

  private sequence(indent: number): YamlValue[] {
    const items: YamlValue[] = [];
    for (let at = this.nextSignificant(); at !== undefined && this.indentOf(at) === indent; at = this.nextSignificant()) {
      const content = this.content(at);
      // A key after a sequence written at its parent key's indentation ends the sequence.
      if (!this.isSequenceEntry(content)) break;
      const rest = content.slice(1).trimStart();
      if (this.isSequenceEntry(rest)) this.fail(at, 'a sequence opened on a sequence entry\'s line ("- - ") is not supported');
      if (rest === '') {
        this.index++;
        items.push(this.nested(indent));
      } else if (mappingColon(rest) > 0) {
        // `- key: value`: a mapping whose keys are indented like `key`. Blank out the dash and read it.
        const keyIndent = this.lines[at]!.indexOf(rest, indent + 1);
        this.lines[at] = ' '.repeat(keyIndent) + this.lines[at]!.slice(keyIndent);
        items.push(this.mapping(keyIndent));
      } else {
        this.index++;
        items.push(this.inlineOrBlockScalar(rest, indent, at));
      }
    }
    return items;
  }

  private mapping(indent: number): { [key: string]: YamlValue } {
    const map: { [key: string]: YamlValue } = {};
    for (let at = this.nextSignificant(); at !== undefined && this.indentOf(at) === indent; at = this.nextSignificant()) {
      const content = this.content(at);
      if (this.isSequenceEntry(content)) this.fail(at, 'a sequence entry where a mapping key was expected');
      const colon = mappingColon(content);
      if (colon <= 0) this.fail(at, 'expected "key: value"');
      const rawKey = content.slice(0, colon).trim();
      const key = /^["']/.test(rawKey) ? String(this.flowValue(rawKey, at)) : rawKey;
      if (Object.prototype.hasOwnProperty.call(map, key)) this.fail(at, `duplicate key ${key}`);
      const rest = content.slice(colon + 1).trim();
      this.index++;
      if (rest !== '') {
        map[key] = this.inlineOrBlockScalar(rest, indent, at);
        continue;
      }
      // `key:` alone: a nested block, a sequence at the key's own indentation, or null.
      const next = this.nextSignificant();
      if (next !== undefined && this.indentOf(next) === indent && this.isSequenceEntry(this.content(next))) map[key] = this.sequence(indent);
      else map[key] = this.nested(indent);
    }
    const after = this.nextSignificant();
    if (after !== undefined && this.indentOf(after) > indent) this.fail(after, 'unexpected indentation');
    return map;
  }

  /** The block under a `key:` or `-` with no value on its line: more indented lines, or null. */
  private nested(parentIndent: number): YamlValue {
    const next = this.nextSignificant();
    if (next === undefined || this.indentOf(next) <= parentIndent) return null;
    return this.node(this.indentOf(next));
  }

  private inlineOrBlockScalar(text: string, parentIndent: number, at: number): YamlValue {
    if (/^[|>]/.test(text)) return this.blockScalar(text, parentIndent, at);
    if (/^[&*!]/.test(text)) this.fail(at, 'anchors, aliases and tags are not supported');
    const value = this.flowValue(text, at);
    // A plain scalar continued on the next, more indented line would be misread: refuse it.
    const next = this.nextSignificant();
    if (next !== undefined && this.indentOf(next) > parentIndent && !/^[[{"']/.test(text)) {
      const nextContent = this.content(next);
      if (mappingColon(nextContent) <= 0 && !this.isSequenceEntry(nextContent)) this.fail(next, 'multi-line plain scalars are not supported');
    }
    return value;
  }

  private blockScalar(header: string, parentIndent: number, at: number): string {
    const match = /^([|>])([-+]?)$/.exec(header);
    if (!match) this.fail(at, 'block scalar header must be |, |-, |+, >, >- or >+');
    const [, style, chomp] = match;
    const raw: string[] = [];
    while (this.index < this.lines.length) {
      const line = this.lines[this.index]!;
      if (line.trim() !== '' && line.search(/\S/) <= parentIndent) break;
      raw.push(line);
      this.index++;
    }
    const firstContent = raw.find((l) => l.trim() !== '');
    const contentIndent = firstContent === undefined ? 0 : firstContent.search(/\S/);
    const lines = raw.map((l) => (l.trim() === '' ? '' : l.slice(contentIndent)));
    raw.forEach((l, i) => {
      if (l.trim() !== '' && l.search(/\S/) < contentIndent) this.fail(at + 1 + i, 'block scalar line less indented than its first line');
    });
    let trailing = 0;
    while (trailing < lines.length && lines[lines.length - 1 - trailing] === '') trailing++;
    const body = lines.slice(0, lines.length - trailing);
    let text: string;
    if (style === '|') {
      text = body.join('\n');
    } else {
      // Folding: lines of a paragraph joined by a space, an empty line is a newline; more indented lines kept.
      text = '';
      body.forEach((line, i) => {
        if (i === 0) text = line;
        else if (line === '') text += '\n';
        else if (body[i - 1] === '' || /^\s/.test(line) || /^\s/.test(body[i - 1]!)) text += (body[i - 1] === '' ? '' : '\n') + line;
        else text += ` ${line}`;
      });
    }
    if (body.length === 0) return '';
    if (chomp === '-') return text;
    if (chomp === '+') return text + '\n'.repeat(trailing + 1);
    return `${text}\n`;
  }

  // ---- flow values (one line) ----

  private flowValue(text: string, at: number): YamlValue {
    const reader = { text, pos: 0 };
    const value = this.flowNode(reader, at, false);
    if (reader.text.slice(reader.pos).trim() !== '') this.fail(at, `unexpected ${JSON.stringify(reader.text.slice(reader.pos))}`);
    return value;
  }

  private flowNode(r: { text: string; pos: number }, at: number, inFlow: boolean): YamlValue {
    this.skipBlanks(r);
    const c = r.text[r.pos];
    if (c === '[') {
      r.pos++;
      const items: YamlValue[] = [];
      for (;;) {
        this.skipBlanks(r);
        if (r.text[r.pos] === ']') return r.pos++, items;
        items.push(this.flowNode(r, at, true));
        this.skipBlanks(r);
        if (r.text[r.pos] === ',') r.pos++;
        else if (r.text[r.pos] !== ']') this.fail(at, 'unterminated flow sequence (flow collections must fit on one line)');
      }
    }
    if (c === '{') {
      r.pos++;
      const map: { [key: string]: YamlValue } = {};
      for (;;) {
        this.skipBlanks(r);
        if (r.text[r.pos] === '}') return r.pos++, map;
        const key = String(this.flowNode(r, at, true));
        this.skipBlanks(r);
        if (r.text[r.pos] !== ':') this.fail(at, 'expected ":" in a flow mapping');
        r.pos++;
        map[key] = this.flowNode(r, at, true);
        this.skipBlanks(r);
        if (r.text[r.pos] === ',') r.pos++;
        else if (r.text[r.pos] !== '}') this.fail(at, 'unterminated flow mapping (flow collections must fit on one line)');
      }
    }
    if (c === '"') {
      const match = /^"(?:[^"\\]|\\.)*"/.exec(r.text.slice(r.pos));
      if (!match) this.fail(at, 'unterminated double-quoted scalar');
      r.pos += match[0].length;
      try {
        return JSON.parse(match[0]) as string;
      } catch {
        return this.fail(at, 'a double-quoted escape outside the JSON subset');
      }
    }
    if (c === "'") {
      const match = /^'(?:[^']|'')*'/.exec(r.text.slice(r.pos));
      if (!match) this.fail(at, 'unterminated single-quoted scalar');
      r.pos += match[0].length;
      return match[0].slice(1, -1).replace(/''/g, "'");
    }
    const plain = (inFlow ? /^[^,\]}:]*(?::(?! )[^,\]}:]*)*/ : /^.*/).exec(r.text.slice(r.pos))![0];
    r.pos += plain.length;
    return resolvePlain(plain.trim());
  }

  private skipBlanks(r: { text: string; pos: number }): void {
    while (r.text[r.pos] === ' ') r.pos++;
  }
}
