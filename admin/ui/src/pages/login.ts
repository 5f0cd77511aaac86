import { ApiError, api, type Session, setSession } from '../api.ts';
import { field, h, mount } from '../dom.ts';
import type { Page } from '../main.ts';

export const loginPage: Page = (root) => {
  const name = h('input', { name: 'name', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', {
    name: 'password',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
  });
  const error = h('div', { class: 'error-box', role: 'alert', hidden: true });
  const submit = h('button', { class: 'primary', type: 'submit' }, 'Log in');

  const form = h(
    'form',
    {
      class: 'panel',
      onsubmit: async (ev: SubmitEvent) => {
        ev.preventDefault();
        error.hidden = true;
        submit.disabled = true;
        try {
          const reply = await api<Session>('/auth/login', {
            method: 'POST',
            body: { name: name.value.trim(), password: password.value },
          });
          setSession(reply);
        } catch (err) {
          error.textContent =
            err instanceof ApiError && err.status === 401
              ? 'Wrong name or password.'
              : err instanceof ApiError && err.status === 429
                ? 'Too many attempts: wait a minute and try again.'
                : `Could not log in: ${(err as Error).message}`;
          error.hidden = false;
          password.select();
        } finally {
          submit.disabled = false;
        }
      },
    },
    h('h1', null, 'mmgw admin'),
    h('p', { class: 'hint' }, 'Log in with your administrator account.'),
    field('Name', name),
    field('Password', password),
    error,
    submit,
  );
  mount(root, h('div', { class: 'login' }, form));
  name.focus();
  return undefined;
};
