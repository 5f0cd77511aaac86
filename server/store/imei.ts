import { GatewayError } from '../../device-protocol/errors.ts';

/**
 * IMEI and IMSI checks. An IMEI is 14 digits (TAC + serial) plus a Luhn check
 * digit (3GPP TS 23.003 §6.2.1); the check digit catches nearly every typo an
 * operator makes when keying one in, so we refuse a wrong one instead of
 * provisioning a handset that can never log in.
 */

/** The Luhn check digit for a string of digits (the digit that would follow it). */
export function luhnCheckDigit(digits: string): number {
  let sum = 0;
  // Walking from the right, the digit next to the (missing) check digit is doubled.
  for (let i = digits.length - 1, double = true; i >= 0; i--, double = !double) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return (10 - (sum % 10)) % 10;
}

/** Why an IMEI is not valid, or undefined when it is. */
export function imeiProblem(imei: unknown): string | undefined {
  if (typeof imei !== 'string' || imei.length === 0) return 'IMEI is missing';
  if (!/^\d+$/.test(imei)) return `IMEI ${JSON.stringify(imei)}: only digits are allowed`;
  if (imei.length !== 15) return `IMEI ${imei}: must be 15 digits, got ${imei.length}`;
  const expected = luhnCheckDigit(imei.slice(0, 14));
  if (imei.charCodeAt(14) - 48 !== expected) return `IMEI ${imei}: check digit should be ${expected}`;
  return undefined;
}

export function isValidImei(imei: unknown): imei is string {
  return imeiProblem(imei) === undefined;
}

/** Throws GatewayError('registry.invalid_imei') with a message that says what is wrong. */
export function assertImei(imei: unknown): asserts imei is string {
  const problem = imeiProblem(imei);
  if (problem !== undefined) throw new GatewayError('registry.invalid_imei', problem, { field: 'imei' });
}

/** Why an IMSI (MCC + MNC + MSIN, 14 or 15 digits in practice) is not valid, or undefined. */
export function imsiProblem(imsi: unknown): string | undefined {
  if (typeof imsi !== 'string' || imsi.length === 0) return 'IMSI is missing';
  if (!/^\d{14,15}$/.test(imsi)) return `IMSI ${JSON.stringify(imsi)}: must be 14 or 15 digits`;
  return undefined;
}

export function assertImsi(imsi: unknown): asserts imsi is string {
  const problem = imsiProblem(imsi);
  if (problem !== undefined) throw new GatewayError('registry.invalid_imsi', problem, { field: 'imsi' });
}

/** Completes 14 digits with their Luhn check digit (tests and demo data). */
export function imeiWithCheckDigit(prefix14: string): string {
  if (!/^\d{14}$/.test(prefix14))
    throw new GatewayError('registry.invalid_imei', 'an IMEI prefix is 14 digits');
  return prefix14 + String(luhnCheckDigit(prefix14));
}
