/**
 * A tiny hyperscript over the real DOM: h('button', { onclick }, 'Save').
 * Pages build their elements with it and replace a region when their state
 * changes; at the scale of an admin console this is all the framework we need.
 */

type Child = Node | string | number | false | null | undefined | Child[];
type Handler = (ev: any) => void;
export type Attrs = Record<string, string | number | boolean | Handler | null | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  applyAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function s(tag: string, attrs?: Attrs | null, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  applyAttrs(el, attrs);
  append(el, children);
  return el;
}

function applyAttrs(el: Element, attrs: Attrs | null | undefined): void {
  if (!attrs) return;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'value' && (el instanceof HTMLInputElement || el instanceof HTMLSelectElement)) {
      el.value = String(value);
    } else if (key === 'checked' && el instanceof HTMLInputElement) {
      el.checked = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

function append(el: Element, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces everything inside `el`. */
export function mount(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

export function formatTime(ms: number | undefined): string {
  if (ms === undefined) return '—';
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatDuration(seconds: number): string {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${hh}h`;
  if (hh > 0) return `${hh}h ${mm}m`;
  return `${mm}m ${s % 60}s`;
}

/** A labelled form field; `hint` holds the inline validation message. */
export function field(label: string, input: HTMLElement, hint?: HTMLElement): HTMLElement {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), input, hint);
}

/** Options for a <select>, with an optional leading "any" entry. */
export function options(values: string[], selected: string | undefined, any?: string): HTMLOptionElement[] {
  const list: HTMLOptionElement[] = [];
  if (any !== undefined) list.push(h('option', { value: '' }, any));
  for (const v of values) list.push(h('option', { value: v, selected: v === selected }, v));
  return list;
}

/** A modal dialog; resolves when it is closed. `body` receives a close function. */
export function dialog(title: string, body: (close: () => void) => Child): Promise<void> {
  return new Promise((resolve) => {
    const el = h('dialog', { class: 'modal' });
    const close = () => {
      el.close();
      el.remove();
      resolve();
    };
    mount(
      el,
      h(
        'header',
        null,
        h('h2', null, title),
        h('button', { class: 'icon', type: 'button', 'aria-label': 'Close', onclick: close }, '×'),
      ),
      body(close),
    );
    el.addEventListener('cancel', (ev) => {
      ev.preventDefault();
      close();
    });
    document.body.append(el);
    el.showModal();
  });
}

/** A short message at the top of the page that goes away by itself. */
export function toast(message: string, kind: 'ok' | 'error' = 'ok'): void {
  let box = document.getElementById('toasts');
  if (!box) {
    box = h('div', { id: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(box);
  }
  const el = h('div', { class: `toast ${kind}` }, message);
  box.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
}
