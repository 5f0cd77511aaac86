/**
 * Fields several mail methods take, as zod schemas with their limits (the
 * kit's error map words the failures; see kit/method-input.ts).
 */
import { z } from 'zod';
import { boundedString, integer, listOf } from '../kit/method-input.ts';

/** A mail account id of this device (`m` + hex; the store says whether it exists). */
export const mailAccountId = boundedString(100);

/** A folder path as IMAP knows it (the server decides whether it exists). */
export const folderPath = boundedString(500).regex(
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  /^[^\u0000-\u001f\u007f]*$/,
  { error: 'must not contain control characters' },
);

export const MAX_UID = 0xffffffff;

/** An IMAP UID. */
export const uid = integer(1, MAX_UID);

/** One UID or a non-empty list of at most `max` (what one UID command carries comfortably). */
export function uidList(max = 1000) {
  const words = 'must be a UID or a non-empty list of UIDs';
  return z.preprocess(
    (v) => (typeof v === 'number' ? [v] : v),
    listOf(uid, {
      min: 1,
      max,
      notList: words,
      tooFew: words,
      tooMany: `must hold at most ${max} UIDs`,
      badEntry: `UIDs are integers from 1 to ${MAX_UID}`,
    }),
  );
}

/** Addresses, flags: one string or a list of at most `max` non-empty strings (320: an address's limit). */
export function stringList(max: number, opts: { optional?: boolean } = {}) {
  return z.preprocess(
    (v) => {
      if (opts.optional && (v === undefined || v === null)) return [];
      return typeof v === 'string' ? [v] : v;
    },
    listOf(z.string().min(1).max(320), {
      max,
      notList: (input) =>
        input === undefined || input === null ? 'is required' : 'must be a list of strings',
      badEntry: 'entries must be non-empty strings',
    }),
  );
}
