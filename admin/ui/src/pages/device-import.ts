/**
 * CSV import: the file is checked first with a dry run (nothing written), the
 * rejected rows are shown with their line and reason, and only then does the
 * operator choose to write. The write goes under an Idempotency-Key made for
 * this file, so pressing Import again after a lost answer fetches the same
 * import job instead of refusing every row as a duplicate. The one-time
 * secrets of the written devices can be saved as a CSV from the browser; the
 * gateway keeps them sealed only until they have been delivered once (or
 * 24 h: GET /devices/imports/{id}).
 */
import {
  csvLineVerbatim,
  DEVICE_CSV_REQUIRED,
  DEVICE_CSV_TEMPLATE,
} from '../../../../server/store/device-csv.ts';
import { ApiError, api } from '../api.ts';
import { dialog, field, h, mount, toast } from '../dom.ts';
import type { RefChoices } from '../refs.ts';

interface ImportRejection {
  line?: number;
  imei?: string;
  code: string;
  reason: string;
  field?: string;
}

interface ImportResult {
  mode: 'all-or-nothing' | 'valid-only';
  dryRun: boolean;
  total: number;
  written: number;
  /** Dry run: the rows a real import would write. */
  wouldWrite?: number;
  rejectedCount: number;
  /** The first 1,000 rejected rows. */
  rejected: ImportRejection[];
  job?: string;
  replayed?: boolean;
  secretsState?: 'sealed' | 'delivered' | 'expired' | 'none';
  secrets: { imei: string; secret: string }[];
}

/** The columns of an export, less those the registry keeps (createdAt, lastSeenAt): the CLI's and the API's. */
const EXAMPLE = DEVICE_CSV_TEMPLATE.join(',');
const EXAMPLE_ROW: Record<string, string> = {
  imei: '490154203237518',
  imsi: '310150123456789',
  operator: 'acme',
  status: 'enabled',
};

function saveText(text: string, filename: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function postImport(csv: string, mode: string, dryRun: boolean, key?: string): Promise<ImportResult> {
  try {
    return await api<ImportResult>('/devices/import', {
      method: 'POST',
      query: { dryRun: String(dryRun), mode },
      body: csv,
      contentType: 'text/csv',
      ...(key ? { headers: { 'idempotency-key': key } } : {}),
    });
  } catch (err) {
    throw err instanceof ApiError ? err : new Error(String(err));
  }
}

export function importDialog(_refs: RefChoices): Promise<void> {
  return dialog('Import devices from CSV', (close) => {
    const text = h('textarea', {
      name: 'csv',
      rows: 9,
      spellcheck: 'false',
      placeholder: `${EXAMPLE}\n${DEVICE_CSV_TEMPLATE.map((c) => EXAMPLE_ROW[c] ?? '').join(',')}`,
    });
    const file = h('input', {
      type: 'file',
      name: 'file',
      accept: '.csv,text/csv,text/plain',
      onchange: async () => {
        const f = file.files?.[0];
        if (f) text.value = await f.text();
        reset();
      },
    });
    text.addEventListener('input', () => reset());
    const mode = h(
      'select',
      { name: 'mode', onchange: () => reset() },
      h('option', { value: 'all-or-nothing' }, 'all or nothing'),
      h('option', { value: 'valid-only' }, 'only the valid rows'),
    );
    const preview = h('div', { id: 'import-preview' });
    const previewButton = h(
      'button',
      { type: 'button', id: 'import-preview-button', class: 'primary' },
      'Check',
    );
    const writeButton = h('button', { type: 'button', id: 'import-write-button', disabled: true }, 'Import');
    let checked: ImportResult | undefined;
    /** The import job this text and mode go under, kept until they change. */
    let key: string | undefined;

    function reset(): void {
      checked = undefined;
      key = undefined;
      writeButton.disabled = true;
      writeButton.textContent = 'Import';
      mount(preview);
    }

    function rejectedTable(rows: ImportRejection[], count: number): HTMLElement {
      return h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { id: 'import-rejected' },
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              ['Line', 'IMEI', 'Field', 'Reason'].map((t) => h('th', null, t)),
            ),
          ),
          h(
            'tbody',
            null,
            rows
              .slice(0, 200)
              .map((r) =>
                h(
                  'tr',
                  { class: 'rejected-row' },
                  h('td', { class: 'num' }, r.line ?? ''),
                  h('td', { class: 'mono' }, r.imei ?? ''),
                  h('td', null, r.field ?? ''),
                  h('td', { class: 'wrap' }, r.reason),
                ),
              ),
          ),
        ),
        count > 200 && h('p', { class: 'hint' }, `… and ${count - 200} more rejected rows.`),
      );
    }

    previewButton.addEventListener('click', async () => {
      reset();
      if (text.value.trim() === '') {
        mount(preview, h('div', { class: 'error-box' }, 'Paste CSV text or choose a file first.'));
        return;
      }
      previewButton.disabled = true;
      try {
        const result = await postImport(text.value, mode.value, true);
        checked = result;
        const allOrNothing = result.mode === 'all-or-nothing';
        const blocked = allOrNothing && result.rejectedCount > 0;
        mount(
          preview,
          h(
            'p',
            { id: 'import-summary' },
            `${result.total} rows checked: ${result.total - result.rejectedCount} valid, `,
            h('strong', null, `${result.rejectedCount} rejected`),
            '. Nothing has been written yet.',
          ),
          result.rejectedCount > 0 && rejectedTable(result.rejected, result.rejectedCount),
          blocked &&
            h(
              'p',
              { class: 'hint error' },
              'In all-or-nothing mode nothing is written while a row is rejected: fix the rows, or choose "only the valid rows".',
            ),
        );
        const would = result.wouldWrite ?? 0;
        writeButton.disabled = blocked || would === 0;
        writeButton.textContent = blocked ? 'Import' : `Import ${would} device${would === 1 ? '' : 's'}`;
      } catch (err) {
        mount(preview, h('div', { class: 'error-box' }, `Check failed: ${(err as Error).message}`));
      } finally {
        previewButton.disabled = false;
      }
    });

    writeButton.addEventListener('click', async () => {
      if (!checked) return;
      writeButton.disabled = true;
      // getRandomValues, not randomUUID: the console may be served over plain HTTP (no secure context).
      key ??= `ui-${Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('')}`;
      try {
        const result = await postImport(text.value, mode.value, false, key);
        toast(`${result.written} devices imported`);
        const secretsCsv = [
          csvLineVerbatim(['imei', 'secret']),
          ...result.secrets.map((s) => csvLineVerbatim([s.imei, s.secret])),
        ].join('');
        mount(
          preview,
          h(
            'p',
            { id: 'import-done' },
            `${result.written} devices written`,
            result.rejectedCount > 0
              ? `, ${result.rejectedCount} row${result.rejectedCount === 1 ? '' : 's'} skipped.`
              : '.',
            result.job && h('span', { class: 'hint', id: 'import-job' }, ` Import job ${result.job}.`),
          ),
          result.replayed &&
            result.secrets.length === 0 &&
            h(
              'p',
              { class: 'hint' },
              'This import was done already: its secrets went with its first answer and are no longer kept.',
            ),
          result.secrets.length > 0 &&
            h(
              'p',
              null,
              'Their secrets are shown only now: ',
              h(
                'button',
                {
                  type: 'button',
                  class: 'primary',
                  onclick: () => saveText(secretsCsv, 'device-secrets.csv', 'text/csv'),
                },
                'Save secrets as CSV',
              ),
            ),
        );
        checked = undefined;
        writeButton.textContent = 'Imported';
      } catch (err) {
        const e = err as ApiError;
        mount(preview, h('div', { class: 'error-box' }, `Import failed: ${e.message}`));
        writeButton.disabled = false;
      }
    });

    return h(
      'div',
      { id: 'import-dialog' },
      h(
        'p',
        { class: 'hint' },
        'Header line first: ',
        h('code', null, EXAMPLE),
        ` (${DEVICE_CSV_REQUIRED.join(' and ')} required). Check shows the rejected rows before anything is written.`,
      ),
      h('div', { class: 'row' }, field('CSV file', file), field('Mode', mode)),
      text,
      preview,
      h(
        'div',
        { class: 'row' },
        previewButton,
        writeButton,
        h('button', { type: 'button', onclick: close }, 'Close'),
      ),
    );
  });
}
