/**
 * The work the MIME workers do (mime-worker.ts runs it; the functions are
 * plain so a unit test can run them in-thread):
 *
 * - `fetch-row`: one large FETCH response row, as imapflow's stream cut it
 *   (the line with its literals), parsed with imapflow's own parser and
 *   formatter, then brought within bounds: envelope strings and flags capped
 *   (field-caps.ts), a BODYSTRUCTURE past MIME_LIMITS (or dropped by the
 *   parser for nesting) left out and the row marked too complex. What goes
 *   back to the event loop is small whatever the row was.
 * - `text`: a large text part's bytes decoded to text (transfer encoding,
 *   charset, HTML to text).
 */
import { parser } from 'imapflow/lib/handler/imap-handler.js';
import { formatMessageResponse } from 'imapflow/lib/tools.js';
import type { FetchMessageObject, MailboxObject } from 'imapflow';
import { capEnvelope, capFlags } from './field-caps.ts';
import { structureWithinLimits } from './mime-limits.ts';
import { renderText, type TextPartCoding } from './mime-text.ts';

export interface FetchRowJob {
  kind: 'fetch-row';
  payload: Uint8Array;
  literals: Uint8Array[];
  /** The selected mailbox's path (imapflow derives a message id from it). */
  path: string;
}

export interface TextJob {
  kind: 'text';
  raw: Uint8Array;
  coding: TextPartCoding;
}

export type MimeJob = FetchRowJob | TextJob;

/** A FETCH row as imapflow formats it, every field bounded. */
export type BoundedRow = Partial<FetchMessageObject>;

export interface FetchRowResult {
  kind: 'fetch-row';
  message: BoundedRow;
  /** The row had a BODYSTRUCTURE past MIME_LIMITS (or too deep to parse): it was left out. */
  tooComplex: boolean;
}

export interface TextResult {
  kind: 'text';
  text: string;
}

export type MimeResult = FetchRowResult | TextResult;

/** Tokens one row may parse into (imapflow's default is 1,000,000): past it the row is too complex. */
const MAX_ROW_TOKENS = 500_000;

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

export async function runMimeJob(job: MimeJob): Promise<MimeResult> {
  if (job.kind === 'text') return { kind: 'text', text: renderText(job.raw, job.coding) };
  const parsed = await parser(asBuffer(job.payload), {
    literals: job.literals.map(asBuffer),
    maxResponseTokens: MAX_ROW_TOKENS,
  });
  if (parsed.tag !== '*' || !/^\d+$/.test(parsed.command ?? '')) throw new Error('not an untagged FETCH row');
  const mailbox = { path: job.path } as MailboxObject;
  const message = (await formatMessageResponse(parsed, mailbox)) as BoundedRow;
  let tooComplex = (parsed.truncatedAttributes ?? []).some((key) => /^body(structure)?$/i.test(key));
  if (message.bodyStructure !== undefined && !structureWithinLimits(message.bodyStructure)) {
    tooComplex = true;
  }
  if (tooComplex) delete message.bodyStructure;
  if (message.envelope) message.envelope = capEnvelope(message.envelope);
  if (message.flags) message.flags = new Set(capFlags(message.flags));
  return { kind: 'fetch-row', message, tooComplex };
}
