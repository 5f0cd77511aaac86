/**
 * The admin console: a shell (navigation by role) and hash routes, one page
 * module each. A page renders into the element it is given and returns a
 * function that stops what it started (timers, live streams) when the user
 * leaves it.
 */
import { can, currentSession, onSession, setSession } from './api.ts';
import { h, mount } from './dom.ts';
import { auditPage } from './pages/audit.ts';
import { deviceLogPage } from './pages/device-log.ts';
import { devicesPage } from './pages/devices.ts';
import { loginPage } from './pages/login.ts';
import { monitorPage } from './pages/monitor.ts';
import { referencePage } from './pages/reference.ts';
import { usagePage } from './pages/usage.ts';
import { usersPage } from './pages/users.ts';

export type Dispose = () => void;
export type Page = (root: HTMLElement, params: string[]) => Dispose | undefined;

interface Route {
  pattern: RegExp;
  page: Page;
  /** Nav entry this route highlights. */
  nav: string;
  allowed: () => boolean;
}

const routes: Route[] = [
  { pattern: /^\/devices$/, page: devicesPage, nav: 'devices', allowed: () => can('devices') },
  {
    pattern: /^\/devices\/(\d{1,15})\/log$/,
    page: deviceLogPage,
    nav: 'devices',
    allowed: () => can('devices'),
  },
  {
    pattern: /^\/reference(?:\/([a-z-]+))?$/,
    page: referencePage,
    nav: 'reference',
    allowed: () => can('reference'),
  },
  { pattern: /^\/usage$/, page: usagePage, nav: 'usage', allowed: () => true },
  { pattern: /^\/monitor$/, page: monitorPage, nav: 'monitor', allowed: () => true },
  { pattern: /^\/audit$/, page: auditPage, nav: 'audit', allowed: () => can('audit') },
  { pattern: /^\/users$/, page: usersPage, nav: 'users', allowed: () => can('users') },
];

const NAV: { id: string; label: string; href: string; allowed: () => boolean }[] = [
  { id: 'devices', label: 'Devices', href: '#/devices', allowed: () => can('devices') },
  { id: 'reference', label: 'Reference data', href: '#/reference', allowed: () => can('reference') },
  { id: 'usage', label: 'Usage report', href: '#/usage', allowed: () => true },
  { id: 'monitor', label: 'System monitor', href: '#/monitor', allowed: () => true },
  { id: 'audit', label: 'Audit log', href: '#/audit', allowed: () => can('audit') },
  { id: 'users', label: 'Users', href: '#/users', allowed: () => can('users') },
];

let dispose: Dispose | undefined;

function homeRoute(): string {
  return can('devices') ? '#/devices' : '#/usage';
}

function route(): void {
  dispose?.();
  dispose = undefined;
  // A dialog belongs to the page that opened it: leaving the page cancels it.
  for (const d of Array.from(document.querySelectorAll('dialog.modal'))) d.dispatchEvent(new Event('cancel'));
  const app = document.getElementById('app')!;
  const path = location.hash.replace(/^#/, '') || '/';
  const session = currentSession();

  if (!session) {
    document.title = 'Log in · mmgw admin';
    const main = h('div');
    mount(app, main);
    dispose = loginPage(main, []);
    return;
  }

  const match = routes.map((r) => ({ r, m: r.pattern.exec(path) })).find((x) => x.m);
  if (!match?.r.allowed()) {
    location.replace(homeRoute());
    return;
  }
  const main = h('main');
  const nav = h(
    'nav',
    { class: 'nav', 'aria-label': 'Sections' },
    NAV.filter((n) => n.allowed()).map((n) =>
      h('a', { href: n.href, class: n.id === match.r.nav ? 'active' : undefined, 'data-nav': n.id }, n.label),
    ),
  );
  mount(
    app,
    h(
      'div',
      { class: 'shell' },
      h(
        'aside',
        { class: 'sidebar' },
        h('div', { class: 'brand' }, 'mmgw', h('small', null, 'gateway admin')),
        nav,
        h(
          'div',
          { class: 'whoami' },
          h('div', null, h('strong', null, session.user.name), ` · ${session.user.role}`),
          h(
            'button',
            { class: 'small logout', type: 'button', onclick: () => setSession(undefined) },
            'Log out',
          ),
        ),
      ),
      main,
    ),
  );
  dispose = match.r.page(
    main,
    match.m!.slice(1).filter((x) => x !== undefined),
  );
}

onSession((s) => {
  if (s && (location.hash === '' || location.hash === '#/' || location.hash === '#/login'))
    location.hash = homeRoute();
  else route();
});
window.addEventListener('hashchange', route);
route();
