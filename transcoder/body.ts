/**
 * Body shrinking: HTML mail becomes readable plain text, and long text is
 * served in chunks that a handset pulls one by one with a `more` token.
 *
 * The transcoder keeps no state between requests: the token carries the
 * offset and a fingerprint of the text, so the caller sends the same source
 * again with the token (the converted text is cached by the role, so the
 * conversion itself runs once).
 */
import { createHash } from 'node:crypto';
import { compile } from 'html-to-text';
import { GatewayError } from '../device-protocol/errors.ts';

type Converter = (html: string) => string;
let converter: Converter | undefined;

/** Compiled on first use and then shared: compile() parses the selector options once, not per mail. */
function getConverter(): Converter {
  converter ??= compile({
    // The handset wraps to its own screen width.
    wordwrap: false,
    // Nesting past this depth is cut (with an ellipsis), so a hostile document cannot exhaust the stack.
    limits: { maxDepth: 64, maxChildNodes: 10_000, ellipsis: '…' },
    selectors: [
      // Images cost bytes and say nothing in text; inline images are offered separately as thumbs.
      { selector: 'img', format: 'skip' },
      { selector: 'style', format: 'skip' },
      { selector: 'script', format: 'skip' },
      { selector: 'head', format: 'skip' },
      {
        selector: 'a',
        options: {
          // "text <url>", and only the text when the text is the URL; no in-page anchors.
          linkBrackets: ['<', '>'],
          hideLinkHrefIfSameAsText: true,
          noAnchorUrl: true,
          ignoreHref: false,
        },
      },
      { selector: 'h1', options: { uppercase: false } },
      { selector: 'h2', options: { uppercase: false } },
      { selector: 'h3', options: { uppercase: false } },
      { selector: 'table', format: 'dataTable', options: { uppercaseHeaderCells: false } },
      { selector: 'hr', options: { length: 8 } },
    ],
  });
  return converter;
}

/** HTML to text for a small screen. Throws transcode.too_large when the HTML has more than maxBytes of UTF-8. */
export function htmlToReadableText(html: string, maxBytes: number): string {
  if (typeof html !== 'string')
    throw new GatewayError('request.bad_input', 'html must be a string.', { field: 'html' });
  if (Buffer.byteLength(html, 'utf8') > maxBytes) {
    throw new GatewayError('transcode.too_large', `The body is larger than ${maxBytes} bytes.`);
  }
  return tidyText(getConverter()(html));
}

/** Trims trailing blanks and collapses runs of blank lines: bytes on a slow link are worth saving. */
export function tidyText(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    .replace(/[ \t\u00a0]+\n/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

export interface TextChunk {
  text: string;
  /** Offset (UTF-16 units) of this chunk in the whole text. */
  offset: number;
  /** UTF-8 size of the whole text: the handset can show "page n of m". */
  totalBytes: number;
  /** Present when text follows: send it back to get the next chunk. */
  more?: string;
}

function fingerprint(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 12);
}

/** Reads a `more` token; throws request.bad_input when it is malformed or belongs to another text. */
export function parseMoreToken(token: string, text: string): number {
  const m = /^t1\.(\d{1,10})\.([A-Za-z0-9_-]{12})$/.exec(token);
  if (!m) throw new GatewayError('request.bad_input', 'The more token is malformed.', { field: 'more' });
  const offset = Number(m[1]);
  if (m[2] !== fingerprint(text) || offset > text.length) {
    throw new GatewayError('request.bad_input', 'The more token belongs to another text.', { field: 'more' });
  }
  return offset;
}

/**
 * The chunk of `text` starting at the token's offset (or at 0), at most
 * chunkBytes of UTF-8. Cuts after a paragraph, a line or a word when one is
 * in the last half of the chunk; never inside a character.
 */
export function chunkText(text: string, chunkBytes: number, more?: string): TextChunk {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 16) {
    throw new GatewayError('request.bad_input', 'chunkBytes must be an integer ≥ 16.', {
      field: 'chunkBytes',
    });
  }
  const start = more === undefined ? 0 : parseMoreToken(more, text);
  const totalBytes = Buffer.byteLength(text, 'utf8');
  // encodeInto stops before a character that would not fit, so the cut is never inside one.
  const window = text.slice(start, start + chunkBytes);
  const { read } = new TextEncoder().encodeInto(window, new Uint8Array(chunkBytes));
  let end = start + (read ?? 0);
  if (end < text.length) {
    const piece = text.slice(start, end);
    const floor = Math.floor(piece.length / 2);
    for (const sep of ['\n\n', '\n', ' ']) {
      const at = piece.lastIndexOf(sep);
      if (at >= floor) {
        end = start + at + sep.length;
        break;
      }
    }
  }
  const chunk: TextChunk = { text: text.slice(start, end), offset: start, totalBytes };
  if (end < text.length) chunk.more = `t1.${end}.${fingerprint(text)}`;
  return chunk;
}
