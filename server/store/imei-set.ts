/**
 * The IMEIs an import has seen so far, with the line each first appeared on,
 * in typed arrays: 12 bytes a slot (a Map of strings costs ~100 bytes an
 * entry, 100 MB at a million rows, which is what made a large import's memory
 * grow with the file). An IMEI of 15 digits is below 2^53, so it is kept
 * exactly as a double. Open addressing, linear probing, grown at 3/4 full.
 *
 * No node: imports: device-csv.ts (bundled by the admin UI) uses it.
 */

const EMPTY = 0;
/** Stored for a row that has no line (rows handed over as objects, not read from a file). */
const NO_LINE = 1;

export class ImeiSet {
  private keys: Float64Array;
  /** line + 2, NO_LINE, or EMPTY for a free slot. */
  private lines: Uint32Array;
  private count = 0;

  constructor(capacity = 1024) {
    let size = 16;
    while (size < capacity) size *= 2;
    this.keys = new Float64Array(size);
    this.lines = new Uint32Array(size);
  }

  get size(): number {
    return this.count;
  }

  /**
   * Adds an IMEI (up to 15 digits). Returns undefined when it is new, else
   * what was stored with its first appearance: the line, or null when it had none.
   */
  add(imei: string, line: number | undefined): number | null | undefined {
    if (!/^\d{1,15}$/.test(imei)) throw new RangeError(`ImeiSet holds up to 15 digits, not ${imei}`);
    const key = Number(imei);
    const slot = this.find(key);
    const stored = this.lines[slot] ?? EMPTY;
    if (stored !== EMPTY) return stored === NO_LINE ? null : stored - 2;
    this.keys[slot] = key;
    this.lines[slot] = line === undefined ? NO_LINE : line + 2;
    if (++this.count * 4 > this.lines.length * 3) this.resize(this.lines.length * 2);
    return undefined;
  }

  /**
   * Makes room for `n` IMEIs in one step. Growing by doubling leaves every
   * smaller pair of arrays behind as garbage until the next full GC, which
   * V8 puts off while such garbage is under 64 MB: an import that can tell
   * its row count ahead (from the file's size) reserves instead.
   */
  reserve(n: number): void {
    let size = this.lines.length;
    while (n * 4 > size * 3) size *= 2;
    if (size > this.lines.length) this.resize(size);
  }

  /** Forgets every IMEI and keeps the room (a second pass over the same file). */
  clear(): void {
    this.lines.fill(EMPTY);
    this.count = 0;
  }

  has(imei: string): boolean {
    if (!/^\d{1,15}$/.test(imei)) return false;
    return (this.lines[this.find(Number(imei))] ?? EMPTY) !== EMPTY;
  }

  /** The slot holding `key`, or the free slot where it would go. */
  private find(key: number): number {
    const mask = this.lines.length - 1;
    // Mix both 32-bit halves: IMEIs of one model share their leading digits.
    const lo = key % 0x1_0000_0000;
    const hi = (key - lo) / 0x1_0000_0000;
    let slot = (Math.imul(lo ^ Math.imul(hi, 0x85eb_ca6b), 0x9e37_79b1) >>> 0) & mask;
    while ((this.lines[slot] ?? EMPTY) !== EMPTY && this.keys[slot] !== key) slot = (slot + 1) & mask;
    return slot;
  }

  private resize(size: number): void {
    const keys = this.keys;
    const lines = this.lines;
    this.keys = new Float64Array(size);
    this.lines = new Uint32Array(size);
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] ?? EMPTY;
      if (line === EMPTY) continue;
      const key = keys[i] ?? 0;
      const slot = this.find(key);
      this.keys[slot] = key;
      this.lines[slot] = line;
    }
  }
}
