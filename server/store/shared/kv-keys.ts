/**
 * Table keys → JetStream KV keys. KV keys are NATS subject tokens (letters,
 * digits, - _ / = and dots between tokens); table keys are any string. Every
 * other character becomes `=` and two hex digits per UTF-8 byte (so `=`
 * itself is escaped too). The encoding works character by character, so a
 * key prefix stays a prefix; the order is restored by sorting decoded keys.
 */
import { GatewayError } from '../../../device-protocol/errors.ts';

const PLAIN = /[A-Za-z0-9_-]/;

export function encodeKvKey(key: string): string {
  let out = '';
  for (const ch of key) {
    if (PLAIN.test(ch)) out += ch;
    else
      for (const byte of Buffer.from(ch, 'utf8'))
        out += `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Throws registry.bad_record for a key no encoder of ours wrote (another writer of the bucket). */
export function decodeKvKey(encoded: string): string {
  if (!/^(?:[A-Za-z0-9_-]|=[0-9A-F]{2})+$/.test(encoded)) {
    throw new GatewayError(
      'registry.bad_record',
      `KV key ${JSON.stringify(encoded.slice(0, 80))} is not ours`,
    );
  }
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; ) {
    if (encoded[i] === '=') {
      bytes.push(Number.parseInt(encoded.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      bytes.push(encoded.charCodeAt(i));
      i += 1;
    }
  }
  const decoded = new TextDecoder('utf-8', { fatal: true });
  try {
    return decoded.decode(Uint8Array.from(bytes));
  } catch (err) {
    throw new GatewayError('registry.bad_record', 'KV key is not UTF-8', { cause: err });
  }
}
