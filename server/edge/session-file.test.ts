import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DeviceSession } from './device-session.ts';
import { parseSessionFile, SESSION_FILE_FORMAT, takeSessionFile, writeSessionFile } from './session-file.ts';

const WINDOW_MS = 120_000;

function dir(t: import('node:test').TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'mmgw-session-file-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function session(imei: string, detachedAt: number): DeviceSession {
  const s = new DeviceSession(`${imei}.sid`, imei, `token-${imei}`);
  s.append(new Uint8Array([1, 2, 3]));
  s.append(new Uint8Array([4, 5]));
  s.append(new Uint8Array([6]));
  s.ack(1);
  s.rememberAnswer('r1', 2);
  s.operator = 'op';
  s.via = 'ws';
  s.detachedAt = detachedAt;
  return s;
}

test('sessions written on stop come back on start: seqs, unacked frames, answered ids, detach time', (t) => {
  const path = join(dir(t), 'sessions.json');
  const a = session('356938035643809', 1000);
  assert.equal(writeSessionFile(path, [a], 2000), 1);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const record = JSON.parse(readFileSync(path, 'utf8'));
  assert.equal(record.format, SESSION_FILE_FORMAT);
  assert.equal(record.v, 1);

  const loaded = takeSessionFile(path, 1000 + WINDOW_MS, WINDOW_MS);
  assert.ok(loaded);
  assert.equal(loaded.expired, 0);
  const [b] = loaded.sessions;
  assert.ok(b);
  assert.equal(b.id, a.id);
  assert.equal(b.resumeToken, a.resumeToken);
  assert.equal(b.nextSeq, 4);
  assert.equal(b.ackedSeq, 1);
  assert.equal(b.frameAt(1), undefined);
  assert.deepEqual(b.frameAt(2), new Uint8Array([4, 5]));
  assert.deepEqual(b.frameAt(3), new Uint8Array([6]));
  assert.equal(b.answerSeq('r1'), 2);
  assert.equal(b.operator, 'op');
  assert.equal(b.detachedAt, 1000);
  // Taken: a second start finds nothing to bring back.
  assert.equal(existsSync(path), false);
  assert.equal(takeSessionFile(path, 0, WINDOW_MS), undefined);
});

test('sessions whose resume window passed while the gateway was down are dropped', (t) => {
  const path = join(dir(t), 'sessions.json');
  writeSessionFile(path, [session('356938035643809', 1000), session('490154203237518', 50_000)], 60_000);
  const loaded = takeSessionFile(path, 1001 + WINDOW_MS, WINDOW_MS);
  assert.deepEqual(
    loaded?.sessions.map((s) => s.imei),
    ['490154203237518'],
  );
  assert.equal(loaded?.expired, 1);
});

test('an attached session (a Resume raced the stop) counts as detached from the write', (t) => {
  const path = join(dir(t), 'sessions.json');
  const s = session('356938035643809', 0);
  writeSessionFile(path, [s], 7000);
  assert.equal(takeSessionFile(path, 7000, WINDOW_MS)?.sessions[0]?.detachedAt, 7000);
});

test('a corrupt, foreign or newer file is refused with a typed error and set aside', (t) => {
  const d = dir(t);
  const cases: [string, string, RegExp][] = [
    ['cut short', '{"format":"mmgw.edge.sessions","v":1,"sess', /not JSON/],
    ['foreign', JSON.stringify({ format: 'something.else', v: 1, sessions: [] }), /not a mmgw.edge.sessions/],
    ['newer', JSON.stringify({ format: SESSION_FILE_FORMAT, v: 9, sessions: [] }), /version 9/],
    ['no list', JSON.stringify({ format: SESSION_FILE_FORMAT, v: 1 }), /no session list/],
    [
      'bad entry',
      JSON.stringify({ format: SESSION_FILE_FORMAT, v: 1, sessions: [{ detachedAt: 1, frames: [] }] }),
      /malformed/,
    ],
    [
      'bad frames',
      JSON.stringify({
        format: SESSION_FILE_FORMAT,
        v: 1,
        sessions: [{ detachedAt: 1, frames: [7], v: 1, sessionId: 's', resumeToken: 't', imei: 'i' }],
      }),
      /malformed/,
    ],
  ];
  for (const [name, text, why] of cases) {
    const path = join(d, `${name}.json`);
    writeFileSync(path, text);
    assert.throws(
      () => takeSessionFile(path, 1, WINDOW_MS),
      (err: { code?: string; message?: string }) =>
        err.code === 'config.bad_sessions_file' && why.test(err.message ?? ''),
      name,
    );
    assert.equal(existsSync(path), false, name);
    assert.equal(readFileSync(`${path}.refused`, 'utf8'), text, name);
  }
  // The reader itself never throws anything else.
  assert.throws(() => parseSessionFile('x', '[]', 1, WINDOW_MS), { code: 'config.bad_sessions_file' });
});
