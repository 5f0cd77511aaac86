/**
 * Mails a sender can craft to hurt the gateway (issue #11, items 6 and 7),
 * as raw RFC 822 for a test to APPEND: a 1 MiB Subject, a 3,000-level MIME
 * nesting, 50,000 parts (about 6 MB), thousands of recipients.
 */

const head = (subject: string, extra = '') =>
  `From: Mallory <mallory@example.test>\r\nTo: alice@example.test\r\nSubject: ${subject}\r\n` +
  `Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <${subject.slice(0, 20).replace(/\W/g, '')}.${Date.now()}@example.test>\r\n` +
  `MIME-Version: 1.0\r\n${extra}`;

/** A plain mail whose Subject is `bytes` long. */
export function hugeSubjectMail(bytes = 1024 * 1024): string {
  return `${head('S'.repeat(bytes))}Content-Type: text/plain; charset=utf-8\r\n\r\nA mail with a very long subject.\r\n`;
}

/** multipart/mixed nested `depth` levels, the text at the bottom. */
export function nestedMail(depth = 3000): string {
  let body = 'Content-Type: text/plain; charset=utf-8\r\n\r\nDeep down.\r\n';
  for (let i = depth; i > 0; i--) {
    body = `Content-Type: multipart/mixed; boundary="n${i}"\r\n\r\n--n${i}\r\n${body}--n${i}--\r\n`;
  }
  return `${head('nested')}${body}`;
}

/** A text part and `parts - 1` small attachments (50,000: about 6 MB; 600: a FETCH row of some 100 KB, within the limits). */
export function manyPartsMail(parts = 50_000): string {
  const chunks = [`--many\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe first of many parts.\r\n`];
  for (let i = 1; i < parts; i++) {
    chunks.push(
      `--many\r\nContent-Type: text/plain; name="p${i}.txt"\r\nContent-Disposition: attachment; filename="p${i}.txt"\r\n\r\n${i}\r\n`,
    );
  }
  return `${head('many parts', 'Content-Type: multipart/mixed; boundary="many"\r\n')}\r\n${chunks.join('')}--many--\r\n`;
}

/** `count` recipients with long names, a Message-ID of 5,000 bytes. */
export function crowdMail(count = 5000): string {
  const to = Array.from({ length: count }, (_, i) => `"${'N'.repeat(300)} ${i}" <r${i}@example.test>`).join(
    ',\r\n ',
  );
  return (
    `From: Mallory <mallory@example.test>\r\nTo: ${to}\r\nSubject: crowd\r\n` +
    `Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <${'m'.repeat(5000)}@example.test>\r\n` +
    'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTo everyone.\r\n'
  );
}
