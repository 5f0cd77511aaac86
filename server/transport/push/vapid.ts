/**
 * The gateway's VAPID key pair (RFC 8292): push services know the sender by
 * it, and a browser subscribes with its public key (applicationServerKey),
 * which the handset asks for with push.vapid. From config `push.vapid`, else
 * `<data>/push/vapid.json` (0600 in a 0700 directory), generated on the first
 * start. A subscription is bound to the key it was made with: a new key
 * orphans every registration, so the file is never rewritten, and every
 * transport of a cluster must be given the same pair in config.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import webpush from 'web-push';
import { z } from 'zod';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { createPrivateFileOnce, ensurePrivateDir, readFileIfThere } from '../../store/data-dir.ts';

export interface VapidKeys {
  publicKey: string;
  privateKey: string;
}

const keyFile = z.object({
  publicKey: z.string().regex(/^[A-Za-z0-9_-]{87}$/),
  privateKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
});

function readVapidFile(file: string): VapidKeys | undefined {
  const text = readFileIfThere(file);
  if (text === undefined) return undefined;
  let parsed: ReturnType<typeof keyFile.safeParse>;
  try {
    parsed = keyFile.safeParse(JSON.parse(text));
  } catch {
    parsed = keyFile.safeParse(undefined);
  }
  if (!parsed.success) throw new GatewayError('config.invalid', `VAPID key file ${file} is unreadable`);
  return parsed.data;
}

/** The configured pair, else the data directory's, else a new one written there (a racing process's wins). */
export function loadVapidKeys(dataDir: string, configured?: VapidKeys, logger?: Logger): VapidKeys {
  if (configured) return configured;
  const dir = join(dataDir, 'push');
  const file = join(dir, 'vapid.json');
  const existing = readVapidFile(file);
  if (existing) return existing;
  ensurePrivateDir(dir);
  const fresh = webpush.generateVAPIDKeys();
  if (createPrivateFileOnce(file, `${JSON.stringify(fresh)}\n`)) {
    logger?.info({ keyFile: file }, 'generated the VAPID key pair for Web Push wake-ups; back it up');
  }
  const written = readVapidFile(file);
  if (!written) throw new GatewayError('config.invalid', `VAPID key file ${file} is unreadable`);
  return written;
}
