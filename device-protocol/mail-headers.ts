/**
 * The two wire forms of a `mail.sync` answer's header list, and the
 * conversion between them. `items` repeats every field name per message;
 * the compact form sends the names once (`columns`) and one array per
 * message (`rows`), about a quarter fewer bytes for a long list. The gateway
 * builds the compact form (compactHeaders); the Handset SDK asks for it by
 * default and hands the application `items` again (expandHeaders), so the
 * documented shape stays what an application sees (mailHeadersPlugin).
 *
 * Pure: no `node:` imports (runs in browsers and handsets too).
 */
import { type HandsetPlugin, isValueMap } from './handset-plugin.ts';
import type { Value } from './messages.ts';

type Body = { [key: string]: Value };

/** The columns of a compact answer, in row order; `from` is split in two. */
export const MAIL_HEADER_COLUMNS = [
  'uid',
  'fromName',
  'fromAddress',
  'subject',
  'date',
  'size',
  'flags',
  'attachments',
  'preview',
] as const;

const isBody = (v: unknown): v is Body => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `items` → `columns` + `rows` (the same header fields, `from` split in two). Other fields pass. */
export function compactHeaders(result: Body): Body {
  const items = result.items;
  if (!Array.isArray(items)) return result;
  const { items: _items, ...rest } = result;
  return {
    ...rest,
    columns: [...MAIL_HEADER_COLUMNS],
    rows: items.map((item) => {
      const h = isBody(item) ? item : {};
      const from = isBody(h.from) ? h.from : {};
      return MAIL_HEADER_COLUMNS.map((c) =>
        c === 'fromName' ? (from.name ?? '') : c === 'fromAddress' ? (from.address ?? '') : (h[c] ?? null),
      );
    }),
  };
}

/**
 * `columns` + `rows` → `items`, field by the column names the answer carries
 * (so a column a newer gateway adds arrives as a field of the same name).
 * An answer without both passes unchanged.
 */
export function expandHeaders(result: Body): Body {
  const { columns, rows } = result;
  if (!Array.isArray(columns) || !Array.isArray(rows)) return result;
  const names = columns.map(String);
  const { columns: _c, rows: _r, ...rest } = result;
  const items = rows.map((row) => {
    const cells = Array.isArray(row) ? row : [];
    const item: Body = {};
    names.forEach((name, i) => {
      const cell = cells[i] ?? null;
      if (name === 'fromName' || name === 'fromAddress') {
        const from = (item.from ??= { name: '', address: '' }) as Body;
        from[name === 'fromName' ? 'name' : 'address'] = cell;
      } else item[name] = cell;
    });
    return item;
  });
  // `items` first, as the gateway writes it.
  return { items, ...rest };
}

const expandSyncAnswer = (answer: Value | undefined) => (isValueMap(answer) ? expandHeaders(answer) : answer);

/**
 * The Handset SDK's plugin for this form: a `mail.sync` without a `compact`
 * field goes on the wire with `compact: true` and resolves with `items`; one
 * that says `compact` either way is sent and answered as it is.
 */
export const mailHeadersPlugin: HandsetPlugin = {
  request(method, body) {
    if (method !== 'mail.sync' || !isValueMap(body) || body.compact !== undefined) return undefined;
    return { body: { ...body, compact: true }, expandResponse: expandSyncAnswer };
  },
};
