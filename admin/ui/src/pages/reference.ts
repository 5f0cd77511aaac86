/**
 * Reference data devices point to: operators, operator profiles, services,
 * service profiles (allowed services, preset accounts, policies) and
 * capability profiles (screen and formats per device model). One table and
 * one form per kind, described by a list of fields.
 */
import { ApiError, api, can } from '../api.ts';
import { dialog, field, formatTime, h, mount, toast } from '../dom.ts';
import type { Page } from '../main.ts';
import { listRefs, type RefKind, type RefRecord } from '../refs.ts';

type FieldType = 'text' | 'number' | 'select' | 'bool' | 'multi' | 'list' | 'json' | 'textarea';

interface FieldSpec {
  /** Dotted path in the record (policies.imageQuality). */
  path: string;
  label: string;
  type: FieldType;
  required?: boolean;
  /** Values of a select or multi; a function for values from other records. */
  values?: string[] | (() => string[]);
  placeholder?: string;
  default?: unknown;
}

interface KindSpec {
  kind: RefKind;
  label: string;
  singular: string;
  columns: { path: string; label: string }[];
  fields: FieldSpec[];
}

let operatorIds: string[] = [];

const KINDS: [KindSpec, ...KindSpec[]] = [
  {
    kind: 'operators',
    label: 'Operators',
    singular: 'operator',
    columns: [
      { path: 'mcc', label: 'MCC' },
      { path: 'mnc', label: 'MNC' },
      { path: 'country', label: 'Country' },
    ],
    fields: [
      { path: 'id', label: 'Id', type: 'text', required: true, placeholder: 'e.g. acme' },
      { path: 'name', label: 'Name', type: 'text', required: true },
      { path: 'mcc', label: 'MCC', type: 'text', placeholder: '3 digits' },
      { path: 'mnc', label: 'MNC', type: 'text', placeholder: '2 or 3 digits' },
      { path: 'country', label: 'Country', type: 'text' },
      { path: 'notes', label: 'Notes', type: 'textarea' },
    ],
  },
  {
    kind: 'operator-profiles',
    label: 'Operator profiles',
    singular: 'operator profile',
    columns: [
      { path: 'operator', label: 'Operator' },
      { path: 'carrier', label: 'Carrier' },
      { path: 'heartbeatMs', label: 'Heartbeat ms' },
    ],
    fields: [
      { path: 'id', label: 'Id', type: 'text', required: true },
      { path: 'name', label: 'Name', type: 'text', required: true },
      { path: 'operator', label: 'Operator', type: 'select', required: true, values: () => operatorIds },
      { path: 'carrier', label: 'Preferred carrier', type: 'select', values: ['auto', 'ws', 'poll'] },
      { path: 'heartbeatMs', label: 'Heartbeat (ms)', type: 'number' },
      { path: 'maxBytesPerDay', label: 'Max bytes per day', type: 'number' },
      { path: 'notes', label: 'Notes', type: 'textarea' },
    ],
  },
  {
    kind: 'services',
    label: 'Services',
    singular: 'service',
    columns: [
      { path: 'kind', label: 'Kind' },
      { path: 'enabled', label: 'Enabled' },
    ],
    fields: [
      { path: 'id', label: 'Id', type: 'text', required: true },
      { path: 'name', label: 'Name', type: 'text', required: true },
      { path: 'kind', label: 'Kind', type: 'select', required: true, values: ['mail', 'im'] },
      { path: 'enabled', label: 'Enabled', type: 'bool', default: true },
      { path: 'notes', label: 'Notes', type: 'textarea' },
    ],
  },
  {
    kind: 'service-profiles',
    label: 'Service profiles',
    singular: 'service profile',
    columns: [
      { path: 'services', label: 'Services' },
      { path: 'policies.maxAttachmentBytes', label: 'Max attachment' },
      { path: 'policies.bodyTruncateBytes', label: 'Body truncation' },
      { path: 'policies.imageQuality', label: 'Image quality' },
    ],
    fields: [
      { path: 'id', label: 'Id', type: 'text', required: true },
      { path: 'name', label: 'Name', type: 'text', required: true },
      {
        path: 'services',
        label: 'Services allowed',
        type: 'multi',
        values: ['mail', 'im'],
        default: ['mail', 'im'],
      },
      {
        path: 'policies.maxAttachmentBytes',
        label: 'Max attachment (bytes)',
        type: 'number',
        required: true,
        default: 1048576,
      },
      {
        path: 'policies.bodyTruncateBytes',
        label: 'Truncate bodies at (bytes)',
        type: 'number',
        required: true,
        default: 16384,
      },
      {
        path: 'policies.imageQuality',
        label: 'Image quality (1-100)',
        type: 'number',
        required: true,
        default: 60,
      },
      {
        path: 'policies.heartbeatMs',
        label: 'Heartbeat (ms, 1000-300000; empty: the edge default)',
        type: 'number',
      },
      {
        path: 'policies.smsWakeups',
        label: 'SMS wake-ups (the last resort, where the gateway has push.sms)',
        type: 'bool',
      },
      {
        path: 'policies.wakeupPreview',
        label: 'Wake-up preview (empty: none, counts only)',
        type: 'select',
        values: ['none', 'sender', 'sender_subject'],
      },
      {
        path: 'accounts',
        label: 'Preset accounts (JSON list of server presets, no credentials)',
        type: 'json',
        default: [],
        placeholder:
          '[{"service":"mail","label":"Company mail","imapHost":"imap.example.com","imapPort":993,"tls":true}]',
      },
      { path: 'notes', label: 'Notes', type: 'textarea' },
    ],
  },
  {
    kind: 'capabilities',
    label: 'Capabilities',
    singular: 'capability profile',
    columns: [
      { path: 'screen.width', label: 'Width' },
      { path: 'screen.height', label: 'Height' },
      { path: 'formats', label: 'Formats' },
      { path: 'imageBudgetBytes', label: 'Image budget' },
    ],
    fields: [
      { path: 'id', label: 'Model id', type: 'text', required: true },
      { path: 'name', label: 'Name', type: 'text', required: true },
      { path: 'tacs', label: 'TACs (8 digits, comma separated)', type: 'list' },
      { path: 'screen.width', label: 'Screen width (px)', type: 'number', required: true, default: 240 },
      { path: 'screen.height', label: 'Screen height (px)', type: 'number', required: true, default: 320 },
      { path: 'screen.colors', label: 'Colours', type: 'number' },
      {
        path: 'formats',
        label: 'Image formats',
        type: 'multi',
        values: ['jpeg', 'png', 'gif', 'webp', 'bmp', 'wbmp'],
        default: ['jpeg', 'png'],
      },
      { path: 'animates', label: 'Shows animations', type: 'bool', default: false },
      {
        path: 'imageBudgetBytes',
        label: 'Image budget (bytes)',
        type: 'number',
        required: true,
        default: 30000,
      },
      { path: 'notes', label: 'Notes', type: 'textarea' },
    ],
  },
];

function getPath(obj: any, path: string): unknown {
  return path.split('.').reduce((o, k) => (o === undefined || o === null ? undefined : o[k]), obj);
}

function setPath(obj: any, path: string, value: unknown): void {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) o = o[k] ??= {};
  // split() yields at least one key.
  o[keys[keys.length - 1]!] = value;
}

function show(value: unknown): string {
  if (value === undefined || value === null) return '—';
  if (Array.isArray(value)) return value.join(', ');
  return String(value);
}

export const referencePage: Page = (root, [kindParam]) => {
  const spec = KINDS.find((k) => k.kind === kindParam) ?? KINDS[0];
  let alive = true;
  const tableBox = h('div', { class: 'table-wrap' });

  async function load(): Promise<void> {
    const [items, operators] = await Promise.all([listRefs(spec.kind), listRefs('operators')]);
    if (!alive) return;
    operatorIds = operators.map((o) => o.id);
    render(items);
  }

  function render(items: RefRecord[]): void {
    const writable = can('write-reference');
    mount(
      tableBox,
      h(
        'table',
        { id: 'ref-table' },
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            h('th', null, 'Id'),
            h('th', null, 'Name'),
            spec.columns.map((c) => h('th', null, c.label)),
            h('th', null, 'Updated'),
            h('th', null, ''),
          ),
        ),
        h(
          'tbody',
          null,
          items.length === 0
            ? h(
                'tr',
                null,
                h(
                  'td',
                  { colspan: spec.columns.length + 4, class: 'empty' },
                  `No ${spec.label.toLowerCase()} yet.`,
                ),
              )
            : items.map((item) =>
                h(
                  'tr',
                  { 'data-id': item.id },
                  h('td', { class: 'mono' }, item.id),
                  h('td', null, item.name),
                  spec.columns.map((c) => h('td', null, show(getPath(item, c.path)))),
                  h('td', null, formatTime(item.updatedAt)),
                  h(
                    'td',
                    { class: 'actions' },
                    writable && [
                      h('button', { class: 'small', type: 'button', onclick: () => edit(item) }, 'Edit'),
                      h(
                        'button',
                        { class: 'small danger', type: 'button', onclick: () => remove(item) },
                        'Remove',
                      ),
                    ],
                  ),
                ),
              ),
        ),
      ),
    );
  }

  async function edit(item: RefRecord | undefined): Promise<void> {
    if (await refForm(spec, item)) void load();
  }

  async function remove(item: RefRecord): Promise<void> {
    if (!confirm(`Remove ${spec.singular} ${item.id}?`)) return;
    try {
      await api(`/${spec.kind}/${encodeURIComponent(item.id)}`, { method: 'DELETE' });
      toast(`Removed ${item.id}`);
      void load();
    } catch (err) {
      toast((err as Error).message, 'error');
    }
  }

  mount(
    root,
    h('h1', null, 'Reference data'),
    h(
      'nav',
      { class: 'tabs' },
      KINDS.map((k) =>
        h('a', { href: `#/reference/${k.kind}`, class: k === spec ? 'active' : undefined }, k.label),
      ),
    ),
    h(
      'div',
      { class: 'panel' },
      h(
        'div',
        { class: 'toolbar' },
        h('h2', null, spec.label),
        h('span', { class: 'spacer' }),
        can('write-reference') &&
          h(
            'button',
            { class: 'primary', type: 'button', id: 'add-ref', onclick: () => edit(undefined) },
            `Add ${spec.singular}`,
          ),
      ),
      tableBox,
    ),
  );
  void load();
  return () => {
    alive = false;
  };
};

/** Create (item undefined) or replace a record. Resolves true when saved. */
function refForm(spec: KindSpec, item: RefRecord | undefined): Promise<boolean> {
  let saved = false;
  return dialog(item ? `Edit ${spec.singular} ${item.id}` : `Add ${spec.singular}`, (close) => {
    const hints = new Map<string, HTMLElement>();
    const readers = new Map<string, () => unknown>();
    const inputs: HTMLElement[] = [];

    for (const f of spec.fields) {
      const current = item ? getPath(item, f.path) : f.default;
      const values = typeof f.values === 'function' ? f.values() : (f.values ?? []);
      let input: HTMLElement;
      let read: () => unknown;
      switch (f.type) {
        case 'number': {
          const el = h('input', {
            name: f.path,
            type: 'number',
            value: current === undefined ? '' : String(current),
          });
          read = () => (el.value.trim() === '' ? undefined : Number(el.value));
          input = el;
          break;
        }
        case 'select': {
          const el = h(
            'select',
            { name: f.path },
            !f.required && h('option', { value: '' }, '—'),
            values.map((v) => h('option', { value: v, selected: v === current }, v)),
          );
          read = () => (el.value === '' ? undefined : el.value);
          input = el;
          break;
        }
        case 'bool': {
          const el = h('input', { name: f.path, type: 'checkbox', checked: Boolean(current) });
          read = () => el.checked;
          input = el;
          break;
        }
        case 'multi': {
          const chosen = new Set(Array.isArray(current) ? (current as string[]) : []);
          const boxes = values.map((v) =>
            h('input', { type: 'checkbox', name: f.path, value: v, checked: chosen.has(v) }),
          );
          read = () => boxes.filter((b) => b.checked).map((b) => b.value);
          input = h(
            'span',
            { class: 'row' },
            boxes.map((b) => h('label', { class: 'row' }, b, b.value)),
          );
          break;
        }
        case 'list': {
          const el = h('input', { name: f.path, value: Array.isArray(current) ? current.join(', ') : '' });
          read = () => {
            const list = el.value
              .split(/[\s,]+/)
              .map((x) => x.trim())
              .filter(Boolean);
            return list.length > 0 ? list : undefined;
          };
          input = el;
          break;
        }
        case 'json': {
          const el = h('textarea', { name: f.path, rows: 3, placeholder: f.placeholder ?? '' });
          el.value = current === undefined ? '' : JSON.stringify(current, null, 1);
          read = () => {
            if (el.value.trim() === '') return undefined;
            try {
              return JSON.parse(el.value);
            } catch {
              throw new ApiError(400, 'api.bad_input', 'not valid JSON', f.path);
            }
          };
          input = el;
          break;
        }
        case 'textarea': {
          const el = h('textarea', { name: f.path, rows: 2 });
          el.value = current === undefined ? '' : String(current);
          read = () => (el.value.trim() === '' ? undefined : el.value);
          input = el;
          break;
        }
        default: {
          const el = h('input', {
            name: f.path,
            value: current === undefined ? '' : String(current),
            placeholder: f.placeholder,
            readonly: item !== undefined && f.path === 'id',
          });
          read = () => (el.value.trim() === '' ? undefined : el.value.trim());
          input = el;
        }
      }
      const hint = h('span', { class: 'hint' });
      hints.set(f.path, hint);
      readers.set(f.path, read);
      inputs.push(field(f.required ? `${f.label} *` : f.label, input, hint));
    }

    const formError = h('div', { class: 'error-box', role: 'alert', hidden: true });
    const submit = h('button', { class: 'primary', type: 'submit' }, 'Save');
    const showError = (path: string | undefined, message: string) => {
      // The API names nested fields with dots; show the message at the closest field we have.
      const key =
        path &&
        [...hints.keys()].find((k) => k === path || path.startsWith(`${k}.`) || k.startsWith(`${path}.`));
      const hint = key ? hints.get(key) : undefined;
      if (hint) {
        hint.textContent = message;
        hint.classList.add('error');
      } else {
        formError.textContent = message;
        formError.hidden = false;
      }
    };

    return h(
      'form',
      {
        id: 'ref-form',
        novalidate: true,
        onsubmit: async (ev: SubmitEvent) => {
          ev.preventDefault();
          formError.hidden = true;
          for (const hint of hints.values()) {
            hint.textContent = '';
            hint.classList.remove('error');
          }
          const body: Record<string, unknown> = {};
          try {
            let missing = false;
            for (const f of spec.fields) {
              const value = readers.get(f.path)!();
              if (value === undefined) {
                if (f.required) {
                  showError(f.path, 'required');
                  missing = true;
                }
                continue;
              }
              setPath(body, f.path, value);
            }
            if (missing) return;
            submit.disabled = true;
            if (item) {
              body.revision = item.revision;
              await api(`/${spec.kind}/${encodeURIComponent(item.id)}`, { method: 'PUT', body });
            } else {
              await api(`/${spec.kind}`, { method: 'POST', body });
            }
            saved = true;
            toast(`${spec.singular} ${String(body.id)} saved`);
            close();
          } catch (err) {
            const e = err as ApiError;
            showError(e instanceof ApiError ? e.field : undefined, e.message);
          } finally {
            submit.disabled = false;
          }
        },
      },
      h('div', { class: 'form-grid' }, inputs),
      formError,
      h('div', { class: 'row' }, submit, h('button', { type: 'button', onclick: close }, 'Cancel')),
    );
  }).then(() => saved);
}
