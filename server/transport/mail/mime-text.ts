/**
 * Small, pure helpers to turn IMAP body parts into UTF-8 text for a handset:
 * transfer decoding (also of partial fetches, which may end mid-token),
 * charset decoding through the runtime's TextDecoder (full ICU: ISO-8859-x,
 * Shift_JIS, ISO-2022-JP, GB18030, KOI8-R, …) and HTML to readable text.
 */
import { convert } from 'html-to-text';

export function decodeTransfer(data: Buffer, encoding: string | undefined): Buffer {
  const enc = (encoding ?? '').toLowerCase();
  if (enc === 'base64') {
    const clean = data.toString('latin1').replace(/[^A-Za-z0-9+/=]/g, '');
    // A partial fetch may end inside a quantum: decode only whole 4-char groups.
    return Buffer.from(clean.slice(0, clean.length - (clean.length % 4)), 'base64');
  }
  if (enc === 'quoted-printable') return decodeQuotedPrintable(data);
  return data;
}

export function decodeQuotedPrintable(data: Buffer): Buffer {
  const out = Buffer.allocUnsafe(data.length);
  let o = 0;
  for (let i = 0; i < data.length; i++) {
    const c = data[i] ?? 0;
    if (c !== 0x3d /* = */) {
      out[o++] = c;
      continue;
    }
    // Soft line break: "=\r\n" or "=\n".
    if (data[i + 1] === 0x0d && data[i + 2] === 0x0a) {
      i += 2;
      continue;
    }
    if (data[i + 1] === 0x0a) {
      i += 1;
      continue;
    }
    const hex = data.toString('latin1', i + 1, i + 3);
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      out[o++] = Number.parseInt(hex, 16);
      i += 2;
    } else if (i + 3 > data.length) {
      break; // truncated escape at the end of a partial fetch
    } else {
      out[o++] = c;
    }
  }
  return out.subarray(0, o);
}

const CHARSET_ALIASES: Record<string, string> = {
  'us-ascii': 'utf-8',
  ascii: 'utf-8',
  'x-sjis': 'shift_jis',
  sjis: 'shift_jis',
  'ks_c_5601-1987': 'euc-kr',
  'x-user-defined': 'windows-1252',
  latin1: 'iso-8859-1',
  'iso-8859-8-i': 'iso-8859-8',
};

export function decodeCharset(data: Uint8Array, charset: string | undefined): string {
  let label = (charset ?? 'utf-8').trim().toLowerCase().replace(/^"|"$/g, '');
  label = CHARSET_ALIASES[label] ?? label;
  try {
    return new TextDecoder(label).decode(data);
  } catch {
    // Unknown label: UTF-8 with replacement characters is still readable for ASCII-heavy text.
    return new TextDecoder('utf-8').decode(data);
  }
}

export function htmlToText(html: string, wordwrap: number | false = false): string {
  return convert(html, {
    wordwrap,
    selectors: [
      { selector: 'img', format: 'skip' },
      { selector: 'a', options: { hideLinkHrefIfSameAsText: true } },
    ],
  });
}

/** How a text part is stored: what renderText needs to turn its bytes into text. */
export interface TextPartCoding {
  encoding?: string;
  charset?: string;
  html: boolean;
}

/** A text part's (possibly partial) bytes as readable UTF-8 text: transfer and charset decoded, HTML as text, LF line ends. */
export function renderText(raw: Uint8Array, coding: TextPartCoding): string {
  const bytes = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  let text = decodeCharset(decodeTransfer(bytes, coding.encoding), coding.charset);
  if (coding.html) text = htmlToText(text);
  return text.replace(/\r\n/g, '\n');
}

/** One short line for header lists: whitespace collapsed, quoted lines dropped. */
export function makePreview(text: string, maxChars = 140): string {
  const lines = text.split(/\r?\n/).filter((l) => !/^\s*>/.test(l));
  const flat = lines.join(' ').replace(/\s+/g, ' ').trim();
  if (flat.length <= maxChars) return flat;
  return flat.slice(0, maxChars - 1).trimEnd() + '…';
}

/** Cuts text to a UTF-8 byte budget without splitting a character; returns the cut offset in chars. */
export function truncateUtf8(text: string, maxBytes: number): { text: string; truncated: boolean } {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return { text, truncated: false };
  let bytes = 0;
  let i = 0;
  for (const ch of text) {
    const b = Buffer.byteLength(ch, 'utf8');
    if (bytes + b > maxBytes) break;
    bytes += b;
    i += ch.length;
  }
  return { text: text.slice(0, i), truncated: true };
}
