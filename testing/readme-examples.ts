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
 * matching a line of its own, in any order (answers of concurrent requests
 * may come either way).
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
    const pattern = linePattern(line);
    const i = left.findIndex((a) => pattern.test(a));
    if (i < 0) return `no line like\n  ${line}\nin\n  ${actual.join('\n  ')}`;
    left.splice(i, 1);
  }
  return undefined;
}
