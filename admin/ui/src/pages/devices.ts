/**
 * Devices: search and page through the registry, provision, edit, enable or
 * disable, remove, reset the secret, see and remove wake-up channels
 * (wake-ups.ts), import and export CSV.
 */
import { imeiProblem, imsiProblem } from '../../../../server/store/imei.ts';
import { ApiError, api, can, download } from '../api.ts';
import { dialog, field, formatTime, h, mount, options, toast } from '../dom.ts';
import type { Page } from '../main.ts';
import { loadRefChoices, type RefChoices } from '../refs.ts';
import { importDialog } from './device-import.ts';
import { wakeupChannelsDialog } from './wake-ups.ts';

export interface Device {
  imei: string;
  imsi?: string;
  operator: string;
  operatorProfile?: string;
  serviceProfile?: string;
  model?: string;
  status: 'enabled' | 'disabled';
  createdAt: number;
  lastSeenAt?: number;
}

interface DeviceList {
  items: Device[];
  next?: string;
  total?: number;
}

interface Filters {
  imei: string;
  imsi: string;
  operator: string;
  profile: string;
  status: string;
}

/** Why an IMEI is refused, in words an operator keying one in understands. */
export function imeiMessage(imei: string): string | undefined {
  const problem = imeiProblem(imei);
  if (problem === undefined) return undefined;
  if (problem.includes('check digit')) return `${problem}: the Luhn check failed, is a digit mistyped?`;
  return problem;
}

export const devicesPage: Page = (root) => {
  const filters: Filters = { imei: '', imsi: '', operator: '', profile: '', status: '' };
  let limit = 25;
  /** Cursors of the pages before the current one (for Previous). */
  const history: (string | undefined)[] = [];
  let after: string | undefined;
  let refs: RefChoices = { operators: [], operatorProfiles: [], serviceProfiles: [], capabilities: [] };
  let alive = true;

  const tableBox = h('div', { class: 'table-wrap' });
  const pager = h('div', { class: 'pager' });
  const filterBar = h('div', { class: 'toolbar', role: 'search' });

  const query = () => ({
    imei: filters.imei,
    imsi: filters.imsi,
    operator: filters.operator,
    profile: filters.profile,
    status: filters.status,
  });

  async function load(): Promise<void> {
    let list: DeviceList;
    try {
      list = await api<DeviceList>('/devices', { query: { ...query(), limit, after } });
    } catch (err) {
      mount(tableBox, h('div', { class: 'error-box' }, `Could not load devices: ${(err as Error).message}`));
      return;
    }
    if (!alive) return;
    renderTable(list);
  }

  function renderTable(list: DeviceList): void {
    const writable = can('write-devices');
    const rows = list.items.map((d) =>
      h(
        'tr',
        { 'data-imei': d.imei },
        h('td', { class: 'mono' }, d.imei),
        h('td', { class: 'mono' }, d.imsi ?? '—'),
        h('td', null, d.operator),
        h('td', null, d.operatorProfile ?? '—', ' / ', d.serviceProfile ?? '—'),
        h('td', null, d.model ?? '—'),
        h(
          'td',
          null,
          h(
            'span',
            { class: `badge ${d.status === 'enabled' ? 'ok' : 'bad'}`, 'data-status': d.status },
            d.status,
          ),
        ),
        h('td', null, formatTime(d.lastSeenAt)),
        h(
          'td',
          { class: 'actions' },
          h('a', { href: `#/devices/${d.imei}/log`, class: 'button small' }, 'Log'),
          h(
            'button',
            {
              class: 'small',
              type: 'button',
              onclick: () => void wakeupChannelsDialog(d.imei),
              title: 'The wake-up channels the handset registered (Web Push, FCM, APNs, SMS)',
            },
            'Wake-ups',
          ),
          writable && [
            h('button', { class: 'small', type: 'button', onclick: () => editDevice(d) }, 'Edit'),
            h(
              'button',
              {
                class: 'small',
                type: 'button',
                onclick: () => setStatus(d, d.status === 'enabled' ? 'disable' : 'enable'),
              },
              d.status === 'enabled' ? 'Disable' : 'Enable',
            ),
            h(
              'button',
              {
                class: 'small',
                type: 'button',
                onclick: () => resetSecret(d),
                title: 'Reset the device secret',
              },
              'New secret',
            ),
            h('button', { class: 'small danger', type: 'button', onclick: () => removeDevice(d) }, 'Remove'),
          ],
        ),
      ),
    );
    mount(
      tableBox,
      h(
        'table',
        { id: 'device-table' },
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            [
              'IMEI',
              'IMSI',
              'Operator',
              'Profiles (operator / service)',
              'Model',
              'Status',
              'Last seen',
              '',
            ].map((t) => h('th', null, t)),
          ),
        ),
        h(
          'tbody',
          null,
          rows.length > 0
            ? rows
            : h('tr', null, h('td', { colspan: 8, class: 'empty' }, 'No devices match.')),
        ),
      ),
    );
    const page = history.length + 1;
    mount(
      pager,
      h(
        'button',
        {
          type: 'button',
          disabled: history.length === 0,
          onclick: () => {
            after = history.pop();
            void load();
          },
        },
        '‹ Previous',
      ),
      h(
        'span',
        null,
        `Page ${page}`,
        list.total !== undefined ? ` · ${list.total} devices in the registry` : '',
      ),
      h(
        'button',
        {
          type: 'button',
          disabled: !list.next,
          onclick: () => {
            history.push(after);
            after = list.next;
            void load();
          },
        },
        'Next ›',
      ),
      h(
        'select',
        {
          'aria-label': 'Rows per page',
          onchange: (ev: Event) => {
            limit = Number((ev.target as HTMLSelectElement).value);
            restart();
          },
        },
        [25, 50, 100, 200].map((n) => h('option', { value: n, selected: n === limit }, `${n} per page`)),
      ),
    );
  }

  function restart(): void {
    history.length = 0;
    after = undefined;
    void load();
  }

  let debounce: ReturnType<typeof setTimeout> | undefined;
  const textFilter = (key: 'imei' | 'imsi', label: string) => {
    const input = h('input', {
      name: `filter-${key}`,
      value: filters[key],
      inputmode: 'numeric',
      placeholder: 'prefix',
      maxlength: 15,
      oninput: () => {
        const v = input.value.replace(/\D/g, '');
        if (v !== input.value) input.value = v;
        filters[key] = v;
        clearTimeout(debounce);
        debounce = setTimeout(restart, 250);
      },
    });
    return field(label, input);
  };
  const selectFilter = (key: 'operator' | 'profile' | 'status', label: string, values: string[]) =>
    field(
      label,
      h(
        'select',
        {
          name: `filter-${key}`,
          onchange: (ev: Event) => {
            filters[key] = (ev.target as HTMLSelectElement).value;
            restart();
          },
        },
        options(values, filters[key], 'any'),
      ),
    );

  function renderFilters(): void {
    const profiles = [...refs.operatorProfiles, ...refs.serviceProfiles].map((p) => p.id);
    mount(
      filterBar,
      textFilter('imei', 'IMEI'),
      textFilter('imsi', 'IMSI'),
      selectFilter(
        'operator',
        'Operator',
        refs.operators.map((o) => o.id),
      ),
      selectFilter('profile', 'Profile', [...new Set(profiles)].sort()),
      selectFilter('status', 'Status', ['enabled', 'disabled']),
      h('span', { class: 'spacer' }),
      can('write-devices') && [
        h(
          'button',
          { class: 'primary', type: 'button', id: 'add-device', onclick: () => addDevice() },
          'Add device',
        ),
        h(
          'button',
          { type: 'button', id: 'import-devices', onclick: () => importDialog(refs).then(() => restart()) },
          'Import CSV',
        ),
      ],
      h(
        'button',
        {
          type: 'button',
          id: 'export-devices',
          onclick: () =>
            download('/devices/export.csv', query(), 'devices.csv').catch((err) =>
              toast(`Export failed: ${err.message}`, 'error'),
            ),
        },
        'Export CSV',
      ),
    );
  }

  async function addDevice(): Promise<void> {
    // The forms offer the reference records: wait for them (a quick click right after the page opened).
    await refsReady;
    const created = await deviceForm(refs, undefined);
    if (created) {
      restart();
      await showSecret(created.device.imei, created.secret, 'Device added');
    }
  }

  async function editDevice(d: Device): Promise<void> {
    await refsReady;
    if (await deviceForm(refs, d)) void load();
  }

  async function setStatus(d: Device, action: 'enable' | 'disable'): Promise<void> {
    try {
      await api(`/devices/${d.imei}/${action}`, { method: 'POST' });
      toast(`Device ${d.imei} ${action}d`);
      void load();
    } catch (err) {
      toast((err as Error).message, 'error');
    }
  }

  async function resetSecret(d: Device): Promise<void> {
    if (!confirm(`Give device ${d.imei} a new secret? The old one stops working at once.`)) return;
    try {
      const reply = await api<{ device: Device; secret: string }>(`/devices/${d.imei}/reset-secret`, {
        method: 'POST',
      });
      await showSecret(d.imei, reply.secret, 'New device secret');
    } catch (err) {
      toast((err as Error).message, 'error');
    }
  }

  async function removeDevice(d: Device): Promise<void> {
    if (!confirm(`Remove device ${d.imei}? It can no longer log in.`)) return;
    try {
      await api(`/devices/${d.imei}`, { method: 'DELETE' });
      toast(`Device ${d.imei} removed`);
      void load();
    } catch (err) {
      toast((err as Error).message, 'error');
    }
  }

  mount(root, h('h1', null, 'Devices'), h('div', { class: 'panel' }, filterBar, tableBox, pager));
  renderFilters();
  void load();
  const refsReady = loadRefChoices().then((r) => {
    refs = r;
    if (alive) renderFilters();
  });
  return () => {
    alive = false;
    clearTimeout(debounce);
  };
};

/** The one-time secret of a device, with a way to copy it. */
export function showSecret(imei: string, secret: string, title: string): Promise<void> {
  return dialog(title, (close) =>
    h(
      'div',
      { id: 'secret-dialog' },
      h('p', null, `The secret of device `, h('code', null, imei), ' is shown this once. Copy it now.'),
      h('div', { class: 'secret', id: 'device-secret' }, secret),
      h(
        'div',
        { class: 'row' },
        h(
          'button',
          {
            type: 'button',
            onclick: async () => {
              try {
                await navigator.clipboard.writeText(secret);
                toast('Copied');
              } catch {
                toast('Copy is not available here: select the text instead', 'error');
              }
            },
          },
          'Copy',
        ),
        h('button', { class: 'primary', type: 'button', onclick: close }, 'Done'),
      ),
    ),
  );
}

/**
 * Add (device undefined) or edit a device. Resolves with the API answer when
 * saved, undefined when cancelled. Field errors from the API land beside the
 * field they name.
 */
function deviceForm(refs: RefChoices, device: Device | undefined): Promise<any> {
  return new Promise((resolve) => {
    let result: any;
    void dialog(device ? `Edit device ${device.imei}` : 'Add device', (close) => {
      const hints: Record<string, HTMLElement> = {};
      const inputs: Record<string, HTMLInputElement | HTMLSelectElement> = {};
      const hint = (name: string) => (hints[name] = h('span', { class: 'hint', id: `hint-${name}` }));
      const setError = (name: string, message: string | undefined) => {
        const el = hints[name];
        if (!el) return false;
        el.textContent = message ?? '';
        el.classList.toggle('error', message !== undefined);
        inputs[name]?.setAttribute('aria-invalid', message !== undefined ? 'true' : 'false');
        return true;
      };

      const imei = h('input', {
        name: 'imei',
        inputmode: 'numeric',
        maxlength: 20,
        autocomplete: 'off',
        placeholder: '15 digits',
        'aria-describedby': 'hint-imei',
      });
      // Check as the operator types, but only complain about length once 15 digits could have been typed.
      imei.addEventListener('input', () => {
        const v = imei.value.trim();
        setError('imei', v.length >= 15 || /\D/.test(v) ? imeiMessage(v) : undefined);
      });
      imei.addEventListener('blur', () => {
        const v = imei.value.trim();
        setError('imei', v === '' ? undefined : imeiMessage(v));
      });
      const imsi = h('input', {
        name: 'imsi',
        inputmode: 'numeric',
        maxlength: 20,
        autocomplete: 'off',
        placeholder: '14 or 15 digits (optional)',
        value: device?.imsi ?? '',
        'aria-describedby': 'hint-imsi',
      });
      imsi.addEventListener('blur', () => {
        const v = imsi.value.trim();
        setError('imsi', v === '' ? undefined : imsiProblem(v));
      });
      const select = (
        name: string,
        values: string[],
        selected: string | undefined,
        none: string | undefined,
      ) => {
        const el = h('select', { name }, options(values, selected, none));
        // Keep a value the lists do not know (a record removed since) selectable.
        if (selected && !values.includes(selected))
          el.append(h('option', { value: selected, selected: true }, selected));
        return el;
      };
      inputs.imei = imei;
      inputs.imsi = imsi;
      inputs.operator = select(
        'operator',
        refs.operators.map((o) => o.id),
        device?.operator,
        device ? undefined : '— choose —',
      );
      inputs.operatorProfile = select(
        'operatorProfile',
        refs.operatorProfiles.map((o) => o.id),
        device?.operatorProfile,
        'none',
      );
      inputs.serviceProfile = select(
        'serviceProfile',
        refs.serviceProfiles.map((o) => o.id),
        device?.serviceProfile,
        'none',
      );
      inputs.model = select(
        'model',
        refs.capabilities.map((o) => o.id),
        device?.model,
        'unknown',
      );
      inputs.status = select('status', ['enabled', 'disabled'], device?.status ?? 'enabled', undefined);

      const formError = h('div', { class: 'error-box', role: 'alert', hidden: true });
      const submit = h('button', { class: 'primary', type: 'submit' }, device ? 'Save' : 'Add device');

      const form = h(
        'form',
        {
          id: 'device-form',
          novalidate: true,
          onsubmit: async (ev: SubmitEvent) => {
            ev.preventDefault();
            formError.hidden = true;
            for (const name of Object.keys(hints)) setError(name, undefined);
            // Called only with the names of the inputs set above.
            const v = (name: string) => inputs[name]!.value.trim();
            let bad = false;
            if (!device) {
              const problem = imeiMessage(v('imei'));
              if (problem) bad = setError('imei', problem);
            }
            if (v('imsi') !== '' && imsiProblem(v('imsi'))) bad = setError('imsi', imsiProblem(v('imsi')));
            if (v('operator') === '') bad = setError('operator', 'choose the operator of this device');
            if (bad) {
              form.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
              return;
            }
            submit.disabled = true;
            try {
              if (device) {
                const orNull = (name: string) => (v(name) === '' ? null : v(name));
                result = await api(`/devices/${device.imei}`, {
                  method: 'PATCH',
                  body: {
                    imsi: orNull('imsi'),
                    operator: v('operator'),
                    operatorProfile: orNull('operatorProfile'),
                    serviceProfile: orNull('serviceProfile'),
                    model: orNull('model'),
                    status: v('status'),
                  },
                });
                toast(`Device ${device.imei} saved`);
              } else {
                const orUndefined = (name: string) => (v(name) === '' ? undefined : v(name));
                result = await api('/devices', {
                  method: 'POST',
                  body: {
                    imei: v('imei'),
                    imsi: orUndefined('imsi'),
                    operator: v('operator'),
                    operatorProfile: orUndefined('operatorProfile'),
                    serviceProfile: orUndefined('serviceProfile'),
                    model: orUndefined('model'),
                    status: v('status'),
                  },
                });
              }
              close();
            } catch (err) {
              const e = err as ApiError;
              const fieldName = e instanceof ApiError ? (e.field ?? fieldOfCode(e.code)) : undefined;
              if (!fieldName || !setError(fieldName, e.message)) {
                formError.textContent = e.message;
                formError.hidden = false;
              }
            } finally {
              submit.disabled = false;
            }
          },
        },
        h(
          'div',
          { class: 'form-grid' },
          !device && field('IMEI', imei, hint('imei')),
          field('IMSI', imsi, hint('imsi')),
          field('Operator', inputs.operator, hint('operator')),
          field('Operator profile', inputs.operatorProfile, hint('operatorProfile')),
          field('Service profile', inputs.serviceProfile, hint('serviceProfile')),
          field('Model (capabilities)', inputs.model, hint('model')),
          field('Status', inputs.status, hint('status')),
        ),
        refs.operators.length === 0 &&
          h(
            'p',
            { class: 'hint' },
            'No operators yet: ',
            h('a', { href: '#/reference/operators', onclick: () => close() }, 'add one under Reference data'),
            ' first.',
          ),
        formError,
        h('div', { class: 'row' }, submit, h('button', { type: 'button', onclick: close }, 'Cancel')),
      );
      setTimeout(() => (device ? inputs.operator! : imei).focus(), 0);
      return form;
    }).then(() => resolve(result));
  });
}

function fieldOfCode(code: string): string | undefined {
  if (code === 'registry.invalid_imei' || code === 'registry.duplicate') return 'imei';
  if (code === 'registry.invalid_imsi') return 'imsi';
  return undefined;
}
