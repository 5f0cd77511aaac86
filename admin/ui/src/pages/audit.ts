/** Audit log: who changed what and when, with the record before and after. */
import { api } from '../api.ts';
import { field, formatTime, h, mount } from '../dom.ts';
import type { Page } from '../main.ts';
import type { AuditEntry } from '../../../records-store.ts';

function json(value: unknown): HTMLElement | string {
  if (value === undefined) return '—';
  return h(
    'details',
    null,
    h('summary', null, 'show'),
    h('pre', { class: 'json' }, JSON.stringify(value, null, 2)),
  );
}

export const auditPage: Page = (root) => {
  const state = { actor: '', action: '', target: '' };
  let entries: AuditEntry[] = [];
  let next: string | undefined;
  let alive = true;
  let debounce: ReturnType<typeof setTimeout> | undefined;
  const tbody = h('tbody');
  const more = h('div', { class: 'pager' });

  async function load(older = false): Promise<void> {
    try {
      const page = await api<{ items: AuditEntry[]; next?: string }>('/audit', {
        query: { ...state, limit: 100, cursor: older ? next : undefined },
      });
      if (!alive) return;
      entries = older ? [...entries, ...page.items] : page.items;
      next = page.next;
      render();
    } catch (err) {
      mount(tbody, h('tr', null, h('td', { colspan: 7, class: 'error-box' }, (err as Error).message)));
    }
  }

  function render(): void {
    mount(
      tbody,
      entries.length === 0
        ? h('tr', null, h('td', { colspan: 7, class: 'empty' }, 'No changes recorded.'))
        : entries.map((e) =>
            h(
              'tr',
              { class: 'audit-row' },
              h('td', { class: 'mono' }, formatTime(e.at)),
              h('td', null, e.actor, ' ', h('span', { class: 'badge' }, e.role)),
              h('td', null, h('code', null, e.action)),
              h('td', { class: 'mono' }, e.target),
              h('td', { class: 'mono' }, e.address ?? ''),
              h('td', { class: 'wrap' }, json(e.before)),
              h('td', { class: 'wrap' }, json(e.after)),
            ),
          ),
    );
    mount(
      more,
      next && h('button', { type: 'button', onclick: () => void load(true) }, 'Load older'),
      h('span', null, `${entries.length} entries shown`),
    );
  }

  const filter = (key: keyof typeof state, label: string, placeholder: string) =>
    field(
      label,
      h('input', {
        name: key,
        placeholder,
        oninput: (ev: Event) => {
          state[key] = (ev.target as HTMLInputElement).value.trim();
          clearTimeout(debounce);
          debounce = setTimeout(() => void load(), 300);
        },
      }),
    );

  mount(
    root,
    h('h1', null, 'Audit log'),
    h(
      'div',
      { class: 'panel' },
      h(
        'div',
        { class: 'toolbar' },
        filter('actor', 'Who', 'user name'),
        filter('action', 'Action', 'e.g. device.create'),
        filter('target', 'Target', 'e.g. an IMEI'),
      ),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { id: 'audit-table' },
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              ['When', 'Who', 'Action', 'Target', 'From', 'Before', 'After'].map((t) => h('th', null, t)),
            ),
          ),
          tbody,
        ),
      ),
      more,
    ),
  );
  void load();
  return () => {
    alive = false;
    clearTimeout(debounce);
  };
};
