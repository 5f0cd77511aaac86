/**
 * Admin users (admin role only): who may log in to this console and the API,
 * with which role; add one, change a role, remove one, set a new password.
 * Every change goes to the audit log on the server side. A password or role
 * change ends that user's sessions; changing your own password asks for the
 * current one and keeps you logged in with the new token the server answers.
 */
import { ApiError, api, currentSession, type Role, setSession } from '../api.ts';
import { dialog, field, formatTime, h, mount, options, toast } from '../dom.ts';
import type { Page } from '../main.ts';

interface AdminUser {
  name: string;
  role: Role;
  createdAt: number;
}

const ROLES: Role[] = ['admin', 'operator', 'viewer'];
const ROLE_HELP: Record<Role, string> = {
  admin: 'changes anything, including users and reference data; drains nodes',
  operator: 'reads everything and manages devices',
  viewer: 'reads usage reports and the system monitor only',
};

export const usersPage: Page = (root) => {
  let alive = true;
  const tableBox = h('div', { class: 'table-wrap' });

  async function load(): Promise<void> {
    try {
      const { items } = await api<{ items: AdminUser[] }>('/users');
      if (alive) render(items);
    } catch (err) {
      if (alive) mount(tableBox, h('div', { class: 'error-box' }, (err as Error).message));
    }
  }

  function render(items: AdminUser[]): void {
    const me = currentSession()?.user.name;
    mount(
      tableBox,
      h(
        'table',
        { id: 'user-table' },
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            ['Name', 'Role', 'Created', ''].map((t) => h('th', null, t)),
          ),
        ),
        h(
          'tbody',
          null,
          items.map((u) =>
            h(
              'tr',
              { class: 'user-row', 'data-user': u.name },
              h(
                'td',
                { class: 'mono' },
                u.name,
                u.name === me && [' ', h('span', { class: 'badge' }, 'you')],
              ),
              h('td', null, h('span', { class: 'badge', 'data-role': u.role }, u.role)),
              h('td', null, formatTime(u.createdAt)),
              h(
                'td',
                { class: 'actions' },
                h(
                  'button',
                  { class: 'small', type: 'button', onclick: () => void passwordForm(u.name, u.name === me) },
                  u.name === me ? 'Change password' : 'Reset password',
                ),
                u.name !== me &&
                  h(
                    'button',
                    {
                      class: 'small',
                      type: 'button',
                      'data-action': 'role',
                      onclick: () =>
                        void roleForm(u).then((sent) => {
                          if (sent) void load();
                        }),
                    },
                    'Change role',
                  ),
                u.name !== me &&
                  h(
                    'button',
                    { class: 'small danger', type: 'button', onclick: () => void remove(u) },
                    'Remove',
                  ),
              ),
            ),
          ),
        ),
      ),
    );
  }

  async function remove(u: AdminUser): Promise<void> {
    if (!confirm(`Remove ${u.role} ${u.name}? Their open sessions stop working at once.`)) return;
    try {
      await api(`/users/${encodeURIComponent(u.name)}`, { method: 'DELETE' });
      toast(`Removed ${u.name}`);
      void load();
    } catch (err) {
      toast((err as Error).message, 'error');
    }
  }

  async function add(): Promise<void> {
    if (await userForm()) void load();
  }

  mount(
    root,
    h('h1', null, 'Users'),
    h(
      'div',
      { class: 'panel' },
      h(
        'div',
        { class: 'toolbar' },
        h('h2', null, 'Console and API users'),
        h('span', { class: 'spacer' }),
        h(
          'button',
          { class: 'primary', type: 'button', id: 'add-user', onclick: () => void add() },
          'Add user',
        ),
      ),
      h(
        'ul',
        { class: 'hint' },
        ROLES.map((r) => h('li', null, h('strong', null, r), `: ${ROLE_HELP[r]}`)),
      ),
      tableBox,
    ),
  );
  void load();
  return () => {
    alive = false;
  };
};

const newPassword = () =>
  h('input', {
    name: 'password',
    type: 'password',
    autocomplete: 'new-password',
    placeholder: 'at least 10 characters',
  });

/**
 * A dialog with one form: `send` calls the API; an error it throws lands
 * beside the field it names (or in the form's box); success closes it.
 * Resolves true when sent.
 */
function formDialog(o: {
  title: string;
  id: string;
  submitLabel: string;
  fields: [label: string, input: HTMLInputElement | HTMLSelectElement][];
  send: () => Promise<string>;
}): Promise<boolean> {
  let sent = false;
  return dialog(o.title, (close) => {
    const hints = new Map(
      o.fields.map(([, input]) => [input.name, h('span', { class: 'hint', id: `hint-${input.name}` })]),
    );
    const box = h('div', { class: 'error-box', role: 'alert', hidden: true });
    const submit = h('button', { class: 'primary', type: 'submit' }, o.submitLabel);
    return h(
      'form',
      {
        id: o.id,
        novalidate: true,
        onsubmit: async (ev: SubmitEvent) => {
          ev.preventDefault();
          box.hidden = true;
          for (const el of hints.values()) {
            el.textContent = '';
            el.classList.remove('error');
          }
          submit.disabled = true;
          try {
            toast(await o.send());
            sent = true;
            close();
          } catch (err) {
            const el = err instanceof ApiError && err.field ? hints.get(err.field) : undefined;
            if (el) {
              el.textContent = (err as Error).message;
              el.classList.add('error');
            } else {
              box.textContent = (err as Error).message;
              box.hidden = false;
            }
          } finally {
            submit.disabled = false;
          }
        },
      },
      h(
        'div',
        { class: 'form-grid' },
        o.fields.map(([label, input]) => field(label, input, hints.get(input.name))),
      ),
      box,
      h('div', { class: 'row' }, submit, h('button', { type: 'button', onclick: close }, 'Cancel')),
    );
  }).then(() => sent);
}

function userForm(): Promise<boolean> {
  const name = h('input', { name: 'name', autocomplete: 'off', placeholder: 'e.g. alice' });
  const role = h('select', { name: 'role' }, options(ROLES, 'operator'));
  const password = newPassword();
  return formDialog({
    title: 'Add user',
    id: 'user-form',
    submitLabel: 'Add user',
    fields: [
      ['Name *', name],
      ['Role *', role],
      ['Password *', password],
    ],
    async send() {
      await api('/users', {
        method: 'POST',
        body: { name: name.value.trim(), role: role.value, password: password.value },
      });
      return `Added ${role.value} ${name.value.trim()}`;
    },
  });
}

function passwordForm(user: string, self: boolean): Promise<boolean> {
  const password = newPassword();
  const oldPassword = h('input', {
    name: 'oldPassword',
    type: 'password',
    autocomplete: 'current-password',
  });
  return formDialog({
    title: self ? 'Change your password' : `New password for ${user}`,
    id: 'password-form',
    submitLabel: 'Set password',
    fields: self
      ? [
          ['Current password *', oldPassword],
          ['New password *', password],
        ]
      : [['New password *', password]],
    async send() {
      const reply = await api<{ ok: true; token?: string; expiresAt?: number }>(
        `/users/${encodeURIComponent(user)}/password`,
        {
          method: 'PUT',
          body: self
            ? { password: password.value, oldPassword: oldPassword.value }
            : { password: password.value },
        },
      );
      // The change ended every token of ours, this one too: carry on with the one the answer brings.
      const session = currentSession();
      if (self && session && reply.token && reply.expiresAt !== undefined)
        setSession({ ...session, token: reply.token, expiresAt: reply.expiresAt });
      return self ? 'Your password was changed' : `Password of ${user} changed; their sessions have ended`;
    },
  });
}

function roleForm(user: AdminUser): Promise<boolean> {
  const role = h('select', { name: 'role' }, options(ROLES, user.role));
  return formDialog({
    title: `Role of ${user.name}`,
    id: 'role-form',
    submitLabel: 'Change role',
    fields: [['Role *', role]],
    async send() {
      await api(`/users/${encodeURIComponent(user.name)}/role`, {
        method: 'PUT',
        body: { role: role.value },
      });
      return `${user.name} is now ${role.value}; their sessions have ended (they log in again)`;
    },
  });
}
