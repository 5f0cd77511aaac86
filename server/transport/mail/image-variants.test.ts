import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  deviceVariantSpecs,
  ImageVariantMemo,
  isTranscodableImage,
  type MediaRegistry,
  registryMediaProfiles,
} from './image-variants.ts';

const IMEI = '35123456789012'.concat('3');

function fakeRegistry(device: { model?: string; profile?: string } | undefined): MediaRegistry {
  const refs: Record<string, { id: string; data: Record<string, unknown> }[]> = {
    capabilities: [
      {
        id: 'nokia-6300',
        data: {
          id: 'nokia-6300',
          name: 'Nokia 6300',
          tacs: ['35123456'],
          screen: { width: 240, height: 320 },
          formats: ['jpeg', 'png'],
          animates: false,
          imageBudgetBytes: 12_000,
        },
      },
    ],
    'service-profiles': [
      { id: 'basic', data: { policies: { imageQuality: 55, maxAttachmentBytes: 1_000_000 } } },
    ],
  };
  return {
    getDevice: (imei) => (imei === IMEI ? device : undefined),
    getRef: (kind, id) => refs[kind]?.find((r) => r.id === id),
    listRefs: (kind) => refs[kind] ?? [],
  };
}

test('the device caps decide the specs when no profile exists', async () => {
  const { specs } = await deviceVariantSpecs(
    'dev-1',
    { screenWidth: 320, screenHeight: 240, imageFormats: ['jpeg'], imageBudgetBytes: 30_000 },
    undefined,
  );
  assert.deepEqual(specs.screen, {
    width: 320,
    height: 240,
    format: 'jpeg',
    maxBytes: 30_000,
    animate: false,
  });
  assert.equal(specs.thumb.width, 60);
  assert.ok(specs.thumb.maxBytes <= 4096);
});

test('the capability profile of the model overrides the caps, the service profile caps the quality', async () => {
  const profiles = registryMediaProfiles(fakeRegistry({ model: 'nokia-6300', profile: 'basic' }));
  const { specs, profile } = await deviceVariantSpecs(
    IMEI,
    { screenWidth: 1080, screenHeight: 1920, imageFormats: ['webp', 'jpeg'], imageBudgetBytes: 200_000 },
    profiles,
  );
  assert.equal(profile.maxAttachmentBytes, 1_000_000);
  assert.deepEqual(specs.screen, {
    width: 240,
    height: 320,
    format: 'jpeg',
    maxBytes: 12_000,
    animate: false,
    maxQuality: 55,
  });
});

test('without a model in the registry, the TAC finds the capability profile', async () => {
  const profiles = registryMediaProfiles(fakeRegistry({}));
  const { specs } = await deviceVariantSpecs(IMEI, undefined, profiles);
  assert.equal(specs.screen.width, 240);
  assert.equal(specs.screen.maxBytes, 12_000);
  assert.equal(specs.screen.maxQuality, undefined);
});

test('malformed caps and a failing profile source fall back to the defaults', async () => {
  const { specs } = await deviceVariantSpecs(
    'dev-2',
    { screenWidth: 'wide', imageFormats: 'jpeg', imageBudgetBytes: -1 },
    () => {
      throw new Error('registry down');
    },
  );
  assert.deepEqual(specs.screen, {
    width: 240,
    height: 320,
    format: 'jpeg',
    maxBytes: 30_000,
    animate: false,
  });
});

test('the memo keeps outcomes and bytes bounded, oldest out first', () => {
  const memo = new ImageVariantMemo(2, 1000);
  const spec = { width: 10, format: 'jpeg' as const, maxBytes: 100 };
  const k = (uid: number) => ImageVariantMemo.key('a', 'INBOX', 7n, uid, '2', spec);
  memo.remember(k(1), { size: 200, format: 'jpeg', width: 10, height: 5 }, new Uint8Array(200));
  memo.remember(k(2), { error: 'transcode.bad_input' });
  memo.remember(k(3), { size: 240, format: 'jpeg', width: 10, height: 5 }, new Uint8Array(240));
  assert.equal(memo.outcome(k(1)), undefined);
  assert.deepEqual(memo.outcome(k(2)), { error: 'transcode.bad_input' });
  assert.equal(memo.bytesOf(k(3))?.byteLength, 240);
  // Bigger than a quarter of the byte bound: the outcome is kept, the bytes are not.
  memo.remember(k(4), { size: 300, format: 'jpeg', width: 10, height: 5 }, new Uint8Array(300));
  assert.equal(memo.bytesOf(k(4)), undefined);
  assert.notEqual(
    ImageVariantMemo.key('a', 'INBOX', 7n, 1, '2', spec),
    ImageVariantMemo.key('a', 'INBOX', 8n, 1, '2', spec),
  );
});

test('only formats the transcoder reads are offered as variants', () => {
  assert.ok(isTranscodableImage('image/jpeg'));
  assert.ok(isTranscodableImage('IMAGE/PNG'));
  assert.ok(!isTranscodableImage('image/svg+xml'));
  assert.ok(!isTranscodableImage('application/pdf'));
});
