import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sniffImageFormat } from './sniff.ts';
import { checkVariantSpec, qualityRungs, variantKey } from './image.ts';
import {
  capabilitiesFromProfile,
  effectiveCapabilities,
  preferredFormat,
  sanitizeCapabilities,
  variantSpec,
} from './variants.ts';

test('screen and thumb specs follow the capabilities; the profile overrides the device', () => {
  const caps = effectiveCapabilities(
    {
      screenWidth: 320,
      screenHeight: 240,
      imageFormats: ['jpeg', 'webp'],
      animates: true,
      imageBudgetBytes: 30_000,
    },
    { imageFormats: ['jpeg'] },
  );
  assert.deepEqual(variantSpec('screen', caps), {
    width: 320,
    height: 240,
    format: 'jpeg',
    maxBytes: 30_000,
    animate: true,
  });
  assert.deepEqual(variantSpec('thumb', caps), { width: 60, height: 60, format: 'jpeg', maxBytes: 4096 });
  assert.equal(variantSpec('original', caps), undefined);
  const none = effectiveCapabilities(undefined);
  assert.deepEqual(variantSpec('screen', none), {
    width: 240,
    height: 320,
    format: 'jpeg',
    maxBytes: 30_000,
    animate: false,
  });
});

test('preferred output format', () => {
  assert.equal(preferredFormat(['JPEG', 'WebP']), 'webp');
  assert.equal(preferredFormat(['png']), 'png');
  assert.equal(preferredFormat([]), 'jpeg');
  assert.equal(preferredFormat(['bmp']), 'jpeg');
});

test('sniffing looks at bytes only', () => {
  const pad = (head: number[] | string) =>
    Buffer.concat([
      typeof head === 'string' ? Buffer.from(head, 'latin1') : Buffer.from(head),
      Buffer.alloc(16),
    ]);
  assert.equal(sniffImageFormat(pad([0xff, 0xd8, 0xff, 0xe0])), 'jpeg');
  assert.equal(sniffImageFormat(pad([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'png');
  assert.equal(sniffImageFormat(pad('GIF89a')), 'gif');
  assert.equal(sniffImageFormat(pad('RIFF\0\0\0\0WEBPVP8 ')), 'webp');
  assert.equal(sniffImageFormat(pad('\0\0\0\x1cftypavif\0\0\0\0avifmif1')), 'avif');
  assert.equal(sniffImageFormat(pad('\0\0\0\x18ftypheic\0\0\0\0mif1')), 'heif');
  assert.equal(sniffImageFormat(pad('\0\0\0\x18ftypmp42\0\0\0\0isom')), undefined, 'a video is not an image');
  assert.equal(sniffImageFormat(pad('<svg xmlns="http://www.w3.org/2000/svg">')), undefined);
  assert.equal(sniffImageFormat(pad('%PDF-1.7')), undefined);
  assert.equal(sniffImageFormat(pad('BM')), undefined, 'BMP is not on the list');
  assert.equal(sniffImageFormat(Buffer.from([0xff, 0xd8, 0xff])), undefined, 'too short to be anything');
});

test('a service profile quality caps the ladder and is part of the cache key', () => {
  const caps = effectiveCapabilities({ screenWidth: 320, screenHeight: 240, imageFormats: ['jpeg'] });
  const spec = variantSpec('screen', caps, { maxQuality: 55 });
  assert.equal(spec?.maxQuality, 55);
  assert.equal(checkVariantSpec(spec).maxQuality, 55);
  assert.notEqual(variantKey(spec!), variantKey({ ...spec!, maxQuality: undefined }));
  assert.throws(() => checkVariantSpec({ ...spec, maxQuality: 0 }), /maxQuality/);
  assert.deepEqual(qualityRungs([80, 70, 60, 50, 40, 30], 55), [50, 40, 30]);
  assert.deepEqual(qualityRungs([80, 70], 20), [20]);
  assert.deepEqual(qualityRungs([80, 70], undefined), [80, 70]);
});

test('an admin capability profile becomes Capabilities', () => {
  assert.deepEqual(
    capabilitiesFromProfile({
      id: 'n95',
      screen: { width: 240, height: 320 },
      formats: ['jpeg', 'gif'],
      animates: true,
      imageBudgetBytes: 20_000,
    }),
    {
      screenWidth: 240,
      screenHeight: 320,
      imageFormats: ['jpeg', 'gif'],
      animates: true,
      imageBudgetBytes: 20_000,
      model: 'n95',
    },
  );
  assert.equal(capabilitiesFromProfile(undefined), undefined);
  assert.deepEqual(sanitizeCapabilities({ screenWidth: 5, animates: 'yes', imageFormats: ['jpeg', 3] }), {
    imageFormats: ['jpeg'],
  });
});
