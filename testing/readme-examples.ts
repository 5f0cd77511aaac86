/**
 * The README's examples as data, for test/integration/readme.test.ts: a block
 * marked `<!-- readme-test: NAME -->` on the line before its fence is a list
 * of steps (a `sh` block: each command, on lines ending in `\` while it goes
 * on, with the `# ` lines after it as its output, `(exit N)` at the end of the
 * last one naming a non-zero exit code) or one expected output (any other
 * language). And how an output is compared with what the README shows.
 */

export interface ReadmeStep {
  /** The command as the README writes it (continuation lines joined). */
  command: string;
  /** The output lines shown, without their `# `. Empty: the output is not shown (only the exit code is checked). */
  expected: string[];
  exitCode: number;
}

export interface ReadmeBlock {
  name: string;
  lang: string;
  /** 1-based line of the marker in the README. */
  line: number;
  /** `sh` blocks: the commands. */
  steps: ReadmeStep[];
  /** Other blocks: the text itself, line by line. */
  text: string[];
}

const MARKER = /^<!-- readme-test: ([a-z0-9-]+) -->$/;
const EXIT = /\s{2,}\(exit (\d+)\)$/;

export function readmeBlocks(readme: string): Map<string, ReadmeBlock> {
  const lines = readme.split('\n');
  const blocks = new Map<string, ReadmeBlock>();
  for (let i = 0; i < lines.length; i++) {
    const name = MARKER.exec(lines[i] ?? '')?.[1];
    if (name === undefined) continue;
    const fence = /^```(\w*)$/.exec(lines[i + 1] ?? '');
    if (!fence)
      throw new Error(`README line ${i + 1}: the marker ${name} is not right before a fenced block`);
    const end = lines.findIndex((l, j) => j > i + 1 && l === '```');
    if (end < 0) throw new Error(`README line ${i + 1}: the block ${name} does not end`);
    if (blocks.has(name)) throw new Error(`README line ${i + 1}: a second block named ${name}`);
    const body = lines.slice(i + 2, end);
    const lang = fence[1] ?? '';
    blocks.set(name, { name, lang, line: i + 1, steps: lang === 'sh' ? steps(body) : [], text: body });
    i = end;
  }
  return blocks;
}

function steps(body: string[]): ReadmeStep[] {
  const out: ReadmeStep[] = [];
  let pending = '';
  for (const line of body) {
    if (pending === '' && (line === '#' || line.startsWith('# '))) {
      const step = out.at(-1);
      if (!step) throw new Error(`an output line before any command: ${line}`);
      const text = line.slice(2);
      const exit = EXIT.exec(text);
      if (exit) step.exitCode = Number(exit[1]);
      step.expected.push(exit ? text.slice(0, exit.index) : text);
    } else if (line.trim() !== '') {
      const continued = line.endsWith('\\');
      pending += continued ? `${line}\n` : line;
      if (!continued) {
        out.push({ command: pending, expected: [], exitCode: 0 });
        pending = '';
      }
    }
  }
  return out;
}

const PLACEHOLDER = /…|<[^<>\s][^<>]*>/g;
/** Sizes, timings and percentages change with the input and the machine: any number matches. */
const MEASURE = /\b\d{1,3}(?:,\d{3})*(?:\.\d+)?(?= (?:bytes|ms|%))/g;

/** A regular expression for one shown line: `…` and `<placeholder>` match anything, measures any number. */
export function linePattern(shown: string): RegExp {
  const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  let source = '';
  let at = 0;
  const marks = [
    ...[...shown.matchAll(PLACEHOLDER)].map((m) => ({ index: m.index, length: m[0].length, as: '.*?' })),
    ...[...shown.matchAll(MEASURE)].map((m) => ({ index: m.index, length: m[0].length, as: '[\\d,.]+' })),
  ].sort((a, b) => a.index - b.index);
  for (const m of marks) {
    if (m.index < at) continue;
    source += literal(shown.slice(at, m.index)) + m.as;
    at = m.index + m.length;
  }
  return new RegExp(`^${source}${literal(shown.slice(at))}$`);
}

/**
 * Why the output does not match the shown lines, or undefined when it does:
 * as many lines (blank ones aside, trailing spaces ignored), each shown line
 * matching a line of its own (lineMismatch), in any order (answers of
 * concurrent requests may come either way).
 */
export function outputMismatch(shown: string[], output: string): string | undefined {
  const actual = output
    .split(/\r?\n/)
    .map((l) => l.trimEnd())
    .filter((l) => l !== '');
  if (actual.length !== shown.length)
    return `${actual.length} lines where the README shows ${shown.length}:\n${actual.join('\n')}`;
  const left = [...actual];
  for (const line of shown) {
    const i = left.findIndex((a) => lineMismatch(line, a) === undefined);
    if (i < 0) return `no line like\n  ${line}\nin\n  ${actual.join('\n  ')}`;
    left.splice(i, 1);
  }
  return undefined;
}

/**
 * A shown JSON line as a shape: JSON in which `…` stands for what the README
 * leaves out. As a value it is any value; as a member of an object, any other
 * members (without it the object has exactly the members shown, in any
 * order); as an element of an array, any number of elements there; inside a
 * string, any text. Everything else is compared exactly.
 */
export type JsonShape =
  | { kind: 'any' }
  | { kind: 'exact'; value: string | number | boolean | null }
  | { kind: 'text'; pattern: RegExp; shown: string }
  | { kind: 'object'; members: Map<string, JsonShape>; open: boolean }
  | { kind: 'array'; items: (JsonShape | 'rest')[] };

const ELLIPSIS = '…';

/** Parses a shown line as a JsonShape; throws (naming the place) when it is not one. */
export function jsonShape(shown: string): JsonShape {
  let at = 0;
  const fail = (what: string): never => {
    throw new Error(`not a JSON shape at ${at} (${what}): ${shown}`);
  };
  const space = () => {
    while (/\s/.test(shown[at] ?? '')) at++;
  };
  const eat = (token: string): boolean => {
    space();
    if (!shown.startsWith(token, at)) return false;
    at += token.length;
    return true;
  };
  const string = (): string => {
    space();
    const m = /^"(?:[^"\\]|\\.)*"/.exec(shown.slice(at));
    if (!m) return fail('a string');
    at += m[0].length;
    return JSON.parse(m[0]) as string;
  };
  const list = (close: string, item: () => void) => {
    if (eat(close)) return;
    do item();
    while (eat(','));
    if (!eat(close)) fail(`"${close}"`);
  };
  const value = (): JsonShape => {
    space();
    if (eat(ELLIPSIS)) return { kind: 'any' };
    if (eat('{')) {
      const members = new Map<string, JsonShape>();
      let open = false;
      list('}', () => {
        if (eat(ELLIPSIS)) open = true;
        else {
          const key = string();
          if (!eat(':')) fail('":"');
          members.set(key, value());
        }
      });
      return { kind: 'object', members, open };
    }
    if (eat('[')) {
      const items: (JsonShape | 'rest')[] = [];
      list(']', () => items.push(eat(ELLIPSIS) ? 'rest' : value()));
      return { kind: 'array', items };
    }
    if (shown[at] === '"') {
      const text = string();
      if (!text.includes(ELLIPSIS)) return { kind: 'exact', value: text };
      const literal = text.split(ELLIPSIS).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
      return { kind: 'text', pattern: new RegExp(`^${literal.join('[^]*')}$`), shown: text };
    }
    const m = /^(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(shown.slice(at));
    if (!m) return fail('a value');
    at += m[0].length;
    return { kind: 'exact', value: JSON.parse(m[0]) as number | boolean | null };
  };
  const shape = value();
  space();
  if (at !== shown.length) fail('the end');
  return shape;
}

/** Why `actual` does not have the shape, naming the path, or undefined when it has. */
export function shapeMismatch(shape: JsonShape, actual: unknown, path = '$'): string | undefined {
  const got = () => `${path} is ${JSON.stringify(actual)}`;
  switch (shape.kind) {
    case 'any':
      return undefined;
    case 'exact':
      return actual === shape.value ? undefined : `${got()}, not ${JSON.stringify(shape.value)}`;
    case 'text':
      return typeof actual === 'string' && shape.pattern.test(actual)
        ? undefined
        : `${got()}, not like ${JSON.stringify(shape.shown)}`;
    case 'object': {
      if (actual === null || typeof actual !== 'object' || Array.isArray(actual))
        return `${got()}, not an object`;
      const record = actual as Record<string, unknown>;
      for (const [key, member] of shape.members) {
        if (!(key in record)) return `${path} has no "${key}"`;
        const why = shapeMismatch(member, record[key], `${path}.${key}`);
        if (why) return why;
      }
      const extra = Object.keys(record).filter((k) => !shape.members.has(k));
      if (!shape.open && extra.length > 0)
        return `${path} has ${extra.map((k) => `"${k}"`)} the README does not show`;
      return undefined;
    }
    case 'array': {
      if (!Array.isArray(actual)) return `${got()}, not an array`;
      return arrayMismatch(shape.items, actual, path);
    }
  }
}

/** Elements in order, `rest` taking any number of them (the first way that fits). */
function arrayMismatch(
  items: (JsonShape | 'rest')[],
  actual: unknown[],
  path: string,
  from = 0,
): string | undefined {
  const [head, ...tail] = items;
  if (head === undefined)
    return from === actual.length ? undefined : `${path} has ${actual.length} elements, the README ${from}`;
  if (head === 'rest') {
    for (let skip = from; skip <= actual.length; skip++)
      if (arrayMismatch(tail, actual, path, skip) === undefined) return undefined;
    return `${path}: no elements fit ${JSON.stringify(actual)}`;
  }
  if (from >= actual.length) return `${path} has ${actual.length} elements, the README more`;
  return shapeMismatch(head, actual[from], `${path}[${from}]`) ?? arrayMismatch(tail, actual, path, from + 1);
}

/** `shown` (a README line) against one line of output: as a JSON shape when it is a JSON object, else by linePattern. */
export function lineMismatch(shown: string, line: string): string | undefined {
  if (shown.startsWith('{') && shown.endsWith('}')) {
    let actual: unknown;
    try {
      actual = JSON.parse(line);
    } catch {
      return `not JSON: ${line}`;
    }
    return shapeMismatch(jsonShape(shown), actual);
  }
  return linePattern(shown).test(line) ? undefined : `not like ${shown}: ${line}`;
}

/** The inline code spans of a README that begin with `prefix` (a pushed event's shape in the prose, a command). */
export function inlineCode(readme: string, prefix: string): string[] {
  return [...readme.matchAll(/`([^`\n]+)`/g)].map((m) => m[1] ?? '').filter((c) => c.startsWith(prefix));
}
