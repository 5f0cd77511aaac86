/** Text a peer sends us, made fit to hand on. */

// XML 1.0 forbids most C0 controls, but a server may pass on character references; never hand them on.
// biome-ignore lint/suspicious/noControlCharactersInRegex: that is the point
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g;

/** Characters XML 1.0 cannot carry (a server would close the stream on them). */
export function hasControlChars(text: string): boolean {
  return text.search(CONTROL) >= 0;
}

export function sanitizeText(text: string, maxChars: number): { text: string; truncated: boolean } {
  let out = text.replace(CONTROL, '');
  let truncated = false;
  if (out.length > maxChars) {
    out = out.slice(0, maxChars);
    // Do not leave half a surrogate pair at the cut.
    const last = out.charCodeAt(out.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) out = out.slice(0, -1);
    truncated = true;
  }
  return { text: out, truncated };
}
