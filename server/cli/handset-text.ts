/**
 * What the interactive handset prints for a value: plain text an operator
 * reads at a prompt (nested fields indented, lists as `-` items, bytes as
 * their count), never a runtime's object dump. `mmgw handset --json` prints
 * the JSON instead (docs/handset-json.md).
 */
import type { Value } from '../../device-protocol/index.ts';

function scalar(value: Value | undefined): string | undefined {
  if (value === undefined || value === null) return '-';
  if (typeof value === 'string') return value === '' ? '""' : value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value instanceof Uint8Array) return `<${value.byteLength} bytes>`;
  if (Array.isArray(value) && value.length === 0) return '(none)';
  if (!Array.isArray(value) && Object.keys(value).length === 0) return '(empty)';
  // A list of plain values fits on one line.
  if (Array.isArray(value) && value.every((v) => scalar(v) !== undefined && typeof v !== 'object'))
    return value.map((v) => scalar(v)).join(', ');
  // So does a mail address ({name, address}).
  if (!Array.isArray(value) && isAddress(value))
    return value.name ? `${value.name} <${value.address}>` : `${value.address}`;
  return undefined;
}

function isAddress(v: { [key: string]: Value }): v is { name?: string; address: string } {
  const keys = Object.keys(v);
  return (
    typeof v.address === 'string' &&
    keys.every((k) => k === 'address' || k === 'name') &&
    (v.name === undefined || v.name === null || typeof v.name === 'string')
  );
}

function lines(value: Value, indent: string, out: string[]): void {
  if (Array.isArray(value)) {
    for (const item of value) {
      const s = scalar(item);
      if (s !== undefined) {
        out.push(`${indent}- ${s}`);
        continue;
      }
      // The item's first field on the dash line, the rest under it.
      const sub: string[] = [];
      lines(item as Value, `${indent}  `, sub);
      out.push(`${indent}- ${sub[0]?.trimStart() ?? ''}`, ...sub.slice(1));
    }
    return;
  }
  for (const [key, v] of Object.entries(value as { [key: string]: Value })) {
    const s = scalar(v);
    if (s !== undefined) out.push(`${indent}${key}: ${s}`);
    else {
      out.push(`${indent}${key}:`);
      lines(v, `${indent}  `, out);
    }
  }
}

/** `label: value` on one line for a plain value, else the label and the value's fields indented under it. */
export function describeValue(label: string, value: Value | undefined): string {
  const s = scalar(value);
  if (s !== undefined) return `${label}: ${s}`;
  const out = [`${label}:`];
  lines(value as Value, '  ', out);
  return out.join('\n');
}
