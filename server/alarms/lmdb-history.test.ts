import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { alarmHistorySuite } from '../../testing/alarm-history-suite.ts';
import type { AlarmHistory } from './history.ts';
import { MemoryAlarmHistory } from './history.ts';
import { LmdbAlarmHistory } from './lmdb-history.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const dirOf = new WeakMap<AlarmHistory, string>();

alarmHistorySuite('lmdb', {
  async open(retention) {
    const dir = mkdtempSync(join(tmpdir(), 'mmgw-alarms-'));
    dirs.push(dir);
    const h = LmdbAlarmHistory.open(dir, retention);
    dirOf.set(h, dir);
    return h;
  },
  async reopen(previous) {
    // A restart: the first handle closes, the same directory opens again.
    await previous.close();
    return LmdbAlarmHistory.open(dirOf.get(previous) ?? '');
  },
});

alarmHistorySuite('memory', {
  async open(retention) {
    return new MemoryAlarmHistory(retention);
  },
});
