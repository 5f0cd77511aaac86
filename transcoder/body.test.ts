import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GatewayError } from '../device-protocol/errors.ts';
import { chunkText, htmlToReadableText } from './body.ts';

describe('htmlToReadableText', () => {
  test('drops images, styles and scripts; keeps links compactly', () => {
    const html = `<html><head><title>t</title><style>p{color:red}</style></head><body>
      <h1>Quarterly report</h1>
      <p>Hello <b>Ann</b>,</p>
      <p><img src="https://tracker.example/pixel.gif" alt="tracking pixel">See
      <a href="https://example.com/report?id=7">the report</a> or
      <a href="https://example.com">https://example.com</a> or <a href="#top">top</a>.</p>
      <script>alert(1)</script>
      <ul><li>one</li><li>two</li></ul>
    </body></html>`;
    const text = htmlToReadableText(html, 1_000_000);
    assert.match(text, /^Quarterly report/);
    assert.match(text, /Hello Ann,/);
    assert.match(text, /the report <https:\/\/example\.com\/report\?id=7>/);
    assert.match(
      text,
      /or https:\/\/example\.com or top\./,
      'href hidden when it is the text; no anchor url',
    );
    assert.doesNotMatch(text, /tracker|pixel|alert|color:red/);
    assert.match(text, /\* one\n \* two/);
    assert.doesNotMatch(text, /\n{3,}/);
  });

  test('refuses bodies past the byte limit', () => {
    assert.throws(
      () => htmlToReadableText('<p>é</p>'.repeat(100), 500),
      (err: unknown) => err instanceof GatewayError && err.code === 'transcode.too_large',
    );
  });

  test('deep nesting does not blow the stack', () => {
    const html = `${'<div>'.repeat(20_000)}deep${'</div>'.repeat(20_000)}<p>after</p>`;
    const text = htmlToReadableText(html, 1_000_000);
    assert.match(text, /after/);
  });
});

describe('chunkText', () => {
  const paragraph = (i: number) => `Paragraph ${i}: ${'word '.repeat(40).trim()} ünïcödé 🙂.`;
  const text = Array.from({ length: 30 }, (_, i) => paragraph(i)).join('\n\n');

  test('walking the more tokens gives back the whole text, each chunk within the byte limit', () => {
    const chunkBytes = 1000;
    let more: string | undefined;
    let joined = '';
    let chunks = 0;
    do {
      const chunk = chunkText(text, chunkBytes, more);
      assert.ok(Buffer.byteLength(chunk.text, 'utf8') <= chunkBytes);
      assert.equal(chunk.offset, joined.length);
      assert.equal(chunk.totalBytes, Buffer.byteLength(text, 'utf8'));
      joined += chunk.text;
      more = chunk.more;
      chunks++;
      assert.ok(chunks < 100, 'terminates');
    } while (more !== undefined);
    assert.equal(joined, text);
    assert.ok(chunks > 5);
  });

  test('cuts after a paragraph when one is near the end, never inside a character', () => {
    const first = chunkText(text, 1000);
    assert.match(first.text, /\n\n$/);
    const emoji = '🙂'.repeat(100);
    const c = chunkText(emoji, 17);
    assert.equal(c.text, '🙂'.repeat(4), '16 bytes: four whole emoji, no half surrogate');
  });

  test('a short text is one chunk without a token', () => {
    assert.deepEqual(chunkText('hi', 100), { text: 'hi', offset: 0, totalBytes: 2 });
  });

  test('a token of another text or a forged one is refused', () => {
    const { more } = chunkText(text, 500);
    assert.ok(more);
    for (const [t, bad] of [
      [`${text}!`, more],
      [text, 'garbage'],
      [text, more.replace(/^t1\.\d+/, 't1.99999999')],
    ] as const) {
      assert.throws(
        () => chunkText(t, 500, bad),
        (err: unknown) =>
          err instanceof GatewayError && err.code === 'request.bad_input' && err.field === 'more',
      );
    }
  });
});
