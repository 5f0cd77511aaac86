/**
 * Image variants on the mail path, end to end: a real gateway process (every
 * role, so the transcoder answers over the in-process bus as a queue group),
 * the Handset SDK declaring a 320×240 JPEG-only screen with a 30 kB budget,
 * and a private Dovecot holding a mail with a 12-MP photo (EXIF orientation 6)
 * and a truncated JPEG.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import sharp from 'sharp';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Handset } from '../../device-protocol/handset.ts';
import { photoJpeg } from '../../testing/index.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type Gateway, provisionDevice, startGateway } from '../harness/gateway.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { handsetFor } from './e2e-suite.ts';
import { ALICE, mailAccountBody } from './mail-fixture.ts';

const CAPS = { screenWidth: 320, screenHeight: 240, imageFormats: ['jpeg'], imageBudgetBytes: 30_000 };

async function compose(opts: ConstructorParameters<typeof MailComposer>[0]): Promise<Buffer> {
  return new MailComposer(opts).compile().build();
}

/**
 * A 4000×3000 photo-like JPEG with a pure red block in its stored top-left
 * corner, EXIF orientation 6 (display rotated 90° clockwise: the block shows
 * top-right) and a camera make in EXIF that must not reach the handset.
 */
async function rotatedPhoto(): Promise<Buffer> {
  const photo = await photoJpeg(4000, 3000, { seed: 5, detail: true });
  const red = await sharp({
    create: { width: 1000, height: 750, channels: 3, background: { r: 255, g: 0, b: 0 } },
  })
    .png()
    .toBuffer();
  return sharp(photo)
    .composite([{ input: red, left: 0, top: 0 }])
    .jpeg({ quality: 90 })
    .withMetadata({ orientation: 6 })
    .withExifMerge({ IFD0: { Make: 'mmgw-test-camera' } })
    .toBuffer();
}

async function pixel(img: Uint8Array, x: number, y: number): Promise<[number, number, number]> {
  const { data, info } = await sharp(img).raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * info.channels;
  // Callers ask for a point inside the image, which has at least three channels.
  return [data[i]!, data[i + 1]!, data[i + 2]!];
}

describe('mail attachment variants through the gateway and the transcoder role', () => {
  let dovecot: DovecotServer;
  let smtp: SmtpPeer;
  let dataDir: string;
  let gw: Gateway;
  let handset: Handset;
  let account: string;
  let uid: number;
  let photo: Buffer;
  let truncated: Buffer;
  let photoPart: string;
  let brokenPart: string;

  before(async () => {
    dovecot = await startDovecot({ users: [ALICE] });
    smtp = await startSmtpPeer({ dovecot });
    dataDir = mkdtempSync(join(tmpdir(), 'mmgw-mail-transcode-'));
    gw = await startGateway({ dataDir });
    const dev = await provisionDevice(dataDir);
    handset = handsetFor(gw, dev, { caps: CAPS, requestTimeoutMs: 60_000 });
    await handset.connect();
    account = (await handset.request<any>('mail.account.add', mailAccountBody(dovecot, smtp, ALICE))).account;
    photo = await rotatedPhoto();
    const other = await photoJpeg(800, 600, { seed: 9 });
    truncated = other.subarray(0, Math.floor(other.length / 2));
    uid = await dovecot.appendMessage(
      ALICE.user,
      'INBOX',
      await compose({
        from: 'bob@example.test',
        to: ALICE.user,
        subject: 'holiday photo',
        text: 'Two pictures.',
        attachments: [
          { filename: 'IMG_0001.jpg', contentType: 'image/jpeg', content: photo },
          { filename: 'broken.jpg', contentType: 'image/jpeg', content: truncated },
        ],
      }),
    );
    const body = await handset.request<any>('mail.body', { account, folder: 'INBOX', uid });
    photoPart = body.attachments.find((a: any) => a.name === 'IMG_0001.jpg').part;
    brokenPart = body.attachments.find((a: any) => a.name === 'broken.jpg').part;
  });
  after(async () => {
    await handset?.close().catch(() => {});
    await gw?.stop();
    await smtp?.stop();
    await dovecot?.stop({ removeDir: true });
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const fetchAll = async (part: string, variant: string, length: number) => {
    const chunks: Uint8Array[] = [];
    let offset = 0;
    let last: any;
    for (let i = 0; i < 200; i++) {
      last = await handset.request<any>('mail.attachment', {
        account,
        folder: 'INBOX',
        uid,
        part,
        variant,
        offset,
        length,
      });
      assert.equal(last.offset, offset);
      chunks.push(last.data);
      offset += last.data.length;
      if (last.done) break;
    }
    assert.equal(last.done, true);
    return { bytes: Buffer.concat(chunks), last };
  };

  test('the body lists the photo with thumb, screen and original (original size always)', async () => {
    assert.ok(photo.length > 1_000_000, `the photo has ${photo.length} bytes`);
    const source = await sharp(photo).metadata();
    assert.equal(source.orientation, 6);
    assert.equal(source.width, 4000);
    assert.match(photo.toString('latin1'), /mmgw-test-camera/);
    const body = await handset.request<any>('mail.body', { account, folder: 'INBOX', uid });
    const listed = body.attachments.find((a: any) => a.part === photoPart);
    assert.deepEqual(
      listed.variants.map((v: any) => v.name),
      ['thumb', 'screen', 'original'],
    );
    const original = listed.variants.find((v: any) => v.name === 'original');
    assert.ok(Math.abs(original.size - photo.length) < photo.length / 100, `original size ${original.size}`);
    for (const v of listed.variants.slice(0, 2)) assert.equal(v.format, 'jpeg');
  });

  test('screen: a rotated 180×240 JPEG within 30 kB, metadata stripped, resumable in chunks', async () => {
    const whole = await handset.request<any>('mail.attachment', {
      account,
      folder: 'INBOX',
      uid,
      part: photoPart,
      variant: 'screen',
      length: 512 * 1024,
    });
    assert.equal(whole.done, true);
    assert.equal(whole.type, 'image/jpeg');
    assert.ok(whole.size <= 30_000, `screen variant has ${whole.size} bytes`);
    assert.equal(whole.data.length, whole.size);
    const meta = await sharp(whole.data).metadata();
    assert.equal(meta.format, 'jpeg');
    // Displayed 3000×4000 (portrait) fitted inside 320×240.
    assert.equal(meta.width, 180);
    assert.equal(meta.height, 240);
    assert.equal(meta.exif, undefined);
    assert.equal(meta.orientation, undefined);
    assert.doesNotMatch(Buffer.from(whole.data).toString('latin1'), /mmgw-test-camera/);
    // The stored top-left red block is displayed top-right after orientation 6.
    const [r1, g1, b1] = await pixel(whole.data, 170, 10);
    assert.ok(r1 > 200 && g1 < 60 && b1 < 60, `top-right is red: ${r1},${g1},${b1}`);
    const [r2, g2, b2] = await pixel(whole.data, 10, 10);
    assert.ok(!(r2 > 200 && g2 < 60 && b2 < 60), `top-left is not red: ${r2},${g2},${b2}`);

    // In 4 kB chunks from offset 0, then a resume in the middle: the same bytes.
    const { bytes } = await fetchAll(photoPart, 'screen', 4096);
    assert.ok(bytes.equals(Buffer.from(whole.data)));
    const mid = await handset.request<any>('mail.attachment', {
      account,
      folder: 'INBOX',
      uid,
      part: photoPart,
      variant: 'screen',
      offset: 5000,
      length: 100,
    });
    assert.ok(Buffer.from(mid.data).equals(bytes.subarray(5000, 5100)));
    assert.equal(mid.done, false);

    // The listing now knows the screen variant's size.
    const body = await handset.request<any>('mail.body', { account, folder: 'INBOX', uid });
    const screen = body.attachments
      .find((a: any) => a.part === photoPart)
      .variants.find((v: any) => v.name === 'screen');
    assert.equal(screen.size, whole.size);
  });

  test('thumb: small, square-bounded, within its own budget', async () => {
    const { bytes, last } = await fetchAll(photoPart, 'thumb', 64 * 1024);
    const meta = await sharp(bytes).metadata();
    assert.equal(meta.format, 'jpeg');
    assert.ok((meta.width ?? 0) <= 60 && (meta.height ?? 0) <= 60, `${meta.width}×${meta.height}`);
    assert.ok(meta.height! > meta.width!, 'portrait, as displayed');
    assert.equal(last.size, bytes.length);
  });

  test('a truncated JPEG gives transcode.bad_input and the original is still offered with its size', async () => {
    await assert.rejects(
      handset.request('mail.attachment', {
        account,
        folder: 'INBOX',
        uid,
        part: brokenPart,
        variant: 'screen',
      }),
      (err: unknown) =>
        err instanceof GatewayError && err.code === 'transcode.bad_input' && /original/.test(err.message),
    );
    const body = await handset.request<any>('mail.body', { account, folder: 'INBOX', uid });
    const listed = body.attachments.find((a: any) => a.part === brokenPart);
    const screen = listed.variants.find((v: any) => v.name === 'screen');
    assert.equal(screen.error, 'transcode.bad_input');
    const original = listed.variants.find((v: any) => v.name === 'original');
    assert.ok(Math.abs(original.size - truncated.length) < 100, `original size ${original.size}`);
    const { bytes } = await fetchAll(brokenPart, 'original', 64 * 1024);
    assert.ok(bytes.equals(truncated));
    // The transcoder keeps serving.
    const again = await handset.request<any>('mail.attachment', {
      account,
      folder: 'INBOX',
      uid,
      part: photoPart,
      variant: 'screen',
    });
    assert.ok(again.size <= 30_000);
  });

  test('a source over the 25 MB limit is refused before it is fetched, the original still offered', async () => {
    const big = Buffer.alloc(26 * 1024 * 1024, 7);
    big[0] = 0xff;
    big[1] = 0xd8;
    big[2] = 0xff;
    const bigUid = await dovecot.appendMessage(
      ALICE.user,
      'INBOX',
      await compose({
        from: 'bob@example.test',
        to: ALICE.user,
        subject: 'huge picture',
        text: 'Big.',
        attachments: [{ filename: 'huge.jpg', contentType: 'image/jpeg', content: big }],
      }),
    );
    const body = await handset.request<any>('mail.body', { account, folder: 'INBOX', uid: bigUid });
    const part = body.attachments[0].part;
    await assert.rejects(
      handset.request('mail.attachment', { account, folder: 'INBOX', uid: bigUid, part, variant: 'thumb' }),
      (err: unknown) => err instanceof GatewayError && err.code === 'transcode.too_large',
    );
    const again = await handset.request<any>('mail.body', { account, folder: 'INBOX', uid: bigUid });
    const variants = again.attachments[0].variants;
    assert.equal(variants.find((v: any) => v.name === 'thumb').error, 'transcode.too_large');
    assert.ok(variants.find((v: any) => v.name === 'original').size > 26_000_000);
  });

  test('original returns the exact bytes of the 12-MP photo', async () => {
    const { bytes, last } = await fetchAll(photoPart, 'original', 512 * 1024);
    assert.equal(last.variant, 'original');
    assert.ok(bytes.equals(photo));
  });
});
