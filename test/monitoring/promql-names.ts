/**
 * The metric names a PromQL expression reads, for checking that the shipped
 * dashboard and rules name only metrics the gateway exports. Not a parser:
 * strings, label matchers, ranges and groupings are cut out, then every
 * identifier that is not a function call, a keyword or a number is a name.
 */
const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'inf',
  'nan',
]);

export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    // Numbers and durations (0.5, 1e3, 5m after offset).
    .replace(/(?<![\w:])\d[\w.]*/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = bare.slice((m.index ?? 0) + m[0].length).trimStart();
    if (after.startsWith('(')) continue; // a function
    if (KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** Every `# TYPE name kind` of a /metrics text, with a histogram's and summary's series names too. */
export function exportedNames(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, kind] = m as unknown as [string, string, string];
    out.add(name);
    if (kind === 'histogram') for (const s of ['_bucket', '_sum', '_count']) out.add(name + s);
    if (kind === 'summary') for (const s of ['_sum', '_count']) out.add(name + s);
  }
  return out;
}
