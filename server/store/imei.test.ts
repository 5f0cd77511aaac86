import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { GatewayError } from '../../device-protocol/errors.ts';
import { assertImei, imeiProblem, imeiWithCheckDigit, imsiProblem, luhnCheckDigit } from './imei.ts';

describe('IMEI', () => {
  test('accepts real IMEIs', () => {
    // From the GSMA/Wikipedia examples and a real handset label.
    for (const imei of ['356938035643809', '490154203237518', '352099001761481']) {
      assert.equal(imeiProblem(imei), undefined, imei);
    }
  });

  test('names the right check digit when it is wrong', () => {
    assert.equal(imeiProblem('356938035643808'), 'IMEI 356938035643808: check digit should be 9');
    assert.throws(
      () => assertImei('490154203237517'),
      (err: unknown) =>
        err instanceof GatewayError &&
        err.code === 'registry.invalid_imei' &&
        /check digit should be 8/.test(err.message),
    );
  });

  test('refuses wrong lengths and non-digits', () => {
    assert.match(imeiProblem('35693803564380') ?? '', /must be 15 digits, got 14/);
    assert.match(imeiProblem('3569380356438090') ?? '', /must be 15 digits, got 16/);
    assert.match(imeiProblem('35693803564380a') ?? '', /only digits/);
    assert.match(imeiProblem('') ?? '', /missing/);
    assert.match(imeiProblem(undefined) ?? '', /missing/);
  });

  test('every single-digit change of a valid IMEI is caught', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^\d{14}$/),
        fc.integer({ min: 0, max: 14 }),
        fc.integer({ min: 1, max: 9 }),
        (p, pos, delta) => {
          const imei = imeiWithCheckDigit(p);
          assert.equal(imeiProblem(imei), undefined);
          const d = (Number(imei[pos]) + delta) % 10;
          const changed = imei.slice(0, pos) + d + imei.slice(pos + 1);
          assert.notEqual(imeiProblem(changed), undefined, `${imei} -> ${changed}`);
        },
      ),
    );
  });

  test('luhnCheckDigit matches the textbook example', () => {
    // Wikipedia's Luhn example: 7992739871 has check digit 3.
    assert.equal(luhnCheckDigit('7992739871'), 3);
  });
});

describe('IMSI', () => {
  test('14 or 15 digits', () => {
    assert.equal(imsiProblem('310150123456789'), undefined);
    assert.equal(imsiProblem('31015012345678'), undefined);
    assert.match(imsiProblem('3101501234567') ?? '', /14 or 15 digits/);
    assert.match(imsiProblem('31015012345678x') ?? '', /14 or 15 digits/);
  });
});
