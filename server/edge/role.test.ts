import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { eventually } from '../../testing/index.ts';
import { type Bus, type DeviceSessionEvent, Subjects } from '../bus/bus.ts';
import { InProcessBus } from '../bus/inproc.ts';
import type { Config } from '../config.ts';
import { silentLogger } from '../ops/logger.ts';
import { announceSessions, resolveJwtSecret } from './role.ts';

describe('edge role', () => {
  test('announces every session it holds again, in order, a batch per event-loop turn', async () => {
    const got: Array<{ subject: string; data: DeviceSessionEvent }> = [];
    const bus = { publish: (subject: string, data: DeviceSessionEvent) => void got.push({ subject, data }) };
    const sessions = Array.from({ length: 600 }, (_, i) => ({ deviceId: `d${i}`, sessionId: `s${i}` }));
    announceSessions({ sessions: () => sessions }, bus as unknown as Bus, silentLogger());
    // 20,000 sessions at once would hold the event loop (and every device's frames) for that long.
    assert.equal(got.length, 256, 'one batch now, the rest on later turns');
    await eventually('every session announced', () => got.length === 600);
    assert.deepEqual(
      got.map((g) => g.data),
      sessions,
    );
    assert.ok(got.every((g) => g.subject === Subjects.sessionUp));
  });

  test('announcing on a closed bus stops quietly', async () => {
    const bus = new InProcessBus();
    await bus.close();
    announceSessions({ sessions: () => [{ deviceId: 'd', sessionId: 's' }] }, bus, silentLogger());
  });

  test('the JWT key: the configured one, else a 0600 key file made once', (t) => {
    const data = mkdtempSync(join(tmpdir(), 'mmgw-edge-role-'));
    t.after(() => rmSync(data, { recursive: true, force: true }));
    const given = 'g'.repeat(32);
    assert.equal(resolveJwtSecret({ data, jwtSecret: given } as Config, silentLogger()), given);
    const made = resolveJwtSecret({ data } as Config, silentLogger());
    const file = join(data, 'keys', 'jwt.key');
    assert.equal(readFileSync(file, 'utf8').trim(), made);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(resolveJwtSecret({ data } as Config, silentLogger()), made, 'read back, not made again');
  });
});
