/**
 * CSV import: the file is checked first with a dry run (nothing written), the
 * rejected rows are shown with their line and reason, and only then does the
 * operator choose to write. The one-time secrets of the written devices can
 * be saved as a CSV from the browser (they are never stored by the gateway).
 */
import { DEVICE_CSV_REQUIRED, DEVICE_CSV_TEMPLATE } from '../../../../server/store/device-csv.ts';
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
  rejected: ImportRejection[];
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

async function postImport(csv: string, mode: string, dryRun: boolean): Promise<ImportResult> {
  try {
    return await api<ImportResult>('/devices/import', {
      method: 'POST',
      query: { dryRun: String(dryRun), mode },
      body: csv,
      contentType: 'text/csv',
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

    function reset(): void {
      checked = undefined;
      writeButton.disabled = true;
      writeButton.textContent = 'Import';
      mount(preview);
    }

    function rejectedTable(rows: ImportRejection[]): HTMLElement {
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
        rows.length > 200 && h('p', { class: 'hint' }, `… and ${rows.length - 200} more rejected rows.`),
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
        const blocked = allOrNothing && result.rejected.length > 0;
        mount(
          preview,
          h(
            'p',
            { id: 'import-summary' },
            `${result.total} rows checked: ${result.total - result.rejected.length} valid, `,
            h('strong', null, `${result.rejected.length} rejected`),
            '. Nothing has been written yet.',
          ),
          result.rejected.length > 0 && rejectedTable(result.rejected),
          blocked &&
            h(
              'p',
              { class: 'hint error' },
              'In all-or-nothing mode nothing is written while a row is rejected: fix the rows, or choose "only the valid rows".',
            ),
        );
        writeButton.disabled = blocked || result.written === 0;
        writeButton.textContent = blocked
          ? 'Import'
          : `Import ${result.written} device${result.written === 1 ? '' : 's'}`;
      } catch (err) {
        mount(preview, h('div', { class: 'error-box' }, `Check failed: ${(err as Error).message}`));
      } finally {
        previewButton.disabled = false;
      }
    });

    writeButton.addEventListener('click', async () => {
      if (!checked) return;
      writeButton.disabled = true;
      try {
        const result = await postImport(text.value, mode.value, false);
        toast(`${result.written} devices imported`);
        const secretsCsv =
          ['imei,secret', ...result.secrets.map((s) => `${s.imei},${s.secret}`)].join('\n') + '\n';
        mount(
          preview,
          h(
            'p',
            { id: 'import-done' },
            `${result.written} devices written`,
            result.rejected.length > 0
              ? `, ${result.rejected.length} row${result.rejected.length === 1 ? '' : 's'} skipped.`
              : '.',
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
