/**
 * The benchmark's INBOX: messages shaped like an ordinary mailbox of today,
 * generated (no fixtures on disk): plain-text notes, newsletters as
 * multipart/alternative with a large HTML part, HTML-only notifications, and
 * some with a PDF or image attachment. Deterministic for a given index.
 */

const WORDS =
  'the of and to in is for on that with as was at by from this be have are or an not which but had were all their one can been has more will would there out about other time some these two may first then do any like new people them only'.split(
    ' ',
  );

function words(seed: number, count: number): string {
  let x = seed * 2654435761;
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out.push(WORDS[x % WORDS.length]!);
  }
  return out.join(' ');
}

function wrap(text: string, width = 76): string {
  const lines: string[] = [];
  let line = '';
  for (const w of text.split(' ')) {
    if (line.length + w.length + 1 > width) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines.join('\r\n');
}

function htmlOf(seed: number, paragraphs: number): string {
  const rows: string[] = [];
  for (let p = 0; p < paragraphs; p++) {
    rows.push(
      `<tr><td style="padding:12px 24px;font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:22px;color:#333333"><p style="margin:0 0 12px 0">${words(seed + p, 60)}</p><a href="https://news.example.test/track?u=${seed}&amp;p=${p}&amp;utm_source=mail&amp;utm_medium=newsletter" style="color:#1a73e8;text-decoration:underline">Read more</a></td></tr>`,
    );
  }
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><style>body{margin:0;padding:0}table{border-collapse:collapse}</style></head><body><table width="100%" cellpadding="0" cellspacing="0" border="0" style="background:#f4f4f4"><tr><td align="center"><table width="600" cellpadding="0" cellspacing="0" border="0" style="background:#ffffff">${rows.join('')}</table></td></tr></table></body></html>`;
}

function base64Lines(bytes: number, seed: number): string {
  const buf = Buffer.alloc(bytes);
  let x = seed >>> 0;
  for (let i = 0; i < bytes; i++) {
    x = (x * 1664525 + 1013904223) >>> 0;
    buf[i] = x >>> 24;
  }
  return buf.toString('base64').replace(/.{76}/g, '$&\r\n');
}

/** The i-th message of the benchmark INBOX (RFC 822, CRLF). */
export function benchMessage(i: number, to: string): string {
  const date = new Date(Date.UTC(2026, 10, 1) + i * 3_600_000).toUTCString();
  const head = [
    `From: Sender ${i % 17} <sender${i % 17}@example.test>`,
    `To: ${to}`,
    `Subject: ${['Weekly digest', 'Re: project plan', 'Your order', 'Meeting notes', 'Invoice'][i % 5]} #${i}`,
    `Date: ${date}`,
    `Message-ID: <bench-${i}@example.test>`,
    'MIME-Version: 1.0',
  ];
  const kind = i % 5;
  if (kind === 1 || kind === 3) {
    // A personal note: plain text.
    return [
      ...head,
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      wrap(words(i, 250 + (i % 7) * 40)),
      '',
    ].join('\r\n');
  }
  if (kind === 0) {
    // A newsletter: text and a large HTML alternative.
    return [
      ...head,
      'Content-Type: multipart/alternative; boundary="alt"',
      '',
      '--alt',
      'Content-Type: text/plain; charset=utf-8',
      '',
      wrap(words(i, 400)),
      '--alt',
      'Content-Type: text/html; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      htmlOf(i, 14).replace(/=/g, '=3D').replace(/.{72}/g, '$&=\r\n'),
      '--alt--',
      '',
    ].join('\r\n');
  }
  if (kind === 2) {
    // A notification: HTML only.
    return [
      ...head,
      'Content-Type: text/html; charset=utf-8',
      '',
      htmlOf(i, 5).replace(/.{76}/g, '$&\r\n'),
      '',
    ].join('\r\n');
  }
  // An invoice: a short text and a PDF attachment.
  return [
    ...head,
    'Content-Type: multipart/mixed; boundary="mix"',
    '',
    '--mix',
    'Content-Type: text/plain; charset=utf-8',
    '',
    wrap(words(i, 80)),
    '--mix',
    `Content-Type: application/pdf; name="invoice-${i}.pdf"`,
    `Content-Disposition: attachment; filename="invoice-${i}.pdf"`,
    'Content-Transfer-Encoding: base64',
    '',
    base64Lines(60_000 + (i % 3) * 20_000, i),
    '--mix--',
    '',
  ].join('\r\n');
}
