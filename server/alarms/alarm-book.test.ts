import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from '../../testing/eventually.ts';
import type { AlarmRecord } from './alarm.ts';
import { AlarmBook } from './alarm-book.ts';
import { type AlarmHistory, MemoryAlarmHistory } from './history.ts';

/** A history whose reads and writes fail (the bus is down) until up() is called. */
function unreachableHistory() {
  const inner = new MemoryAlarmHistory();
  let down = true;
  const flaky: AlarmHistory = {
    backend: 'memory',
    latest: (id) => (down ? Promise.reject(new Error('bus down')) : inner.latest(id)),
    append: (r, seq) => (down ? Promise.reject(new Error('bus down')) : inner.append(r, seq)),
    list: (o) => inner.list(o),
    watch: (l) => inner.watch(l),
    close: () => inner.close(),
  };
  return {
    inner,
    flaky,
    up() {
      down = false;
    },
  };
}

const gone = (subject: string) => ({
  kind: 'node_gone' as const,
  subject,
  severity: 'critical' as const,
  message: `${subject} gone`,
});

test('one raised alarm per subject until it is cleared; a clear of nothing writes nothing', async () => {
  const history = new MemoryAlarmHistory();
  const written: AlarmRecord[] = [];
  const book = await AlarmBook.open({ history, nodeId: 'n1', onWritten: (r) => written.push(r) });
  await book.raise(gone('e1'));
  await book.raise(gone('e1'));
  await book.raise(gone('e1'));
  assert.deepEqual(
    written.map((r) => [r.id, r.state, r.node]),
    [['node_gone:e1', 'raised', 'n1']],
  );
  assert.equal(book.list(true)[0]?.count, 3, 'repeats are counted, not written');
  await book.clear('node_gone', 'e2');
  await book.clear('node_gone', 'e1', 'back');
  await book.clear('node_gone', 'e1');
  assert.deepEqual(
    written.map((r) => r.state),
    ['raised', 'cleared'],
  );
  assert.equal(written[1]?.message, 'back');
  assert.equal(written[1]?.since, written[0]?.since, 'a clear names when the alarm was raised');
  await book.raise(gone('e1'));
  assert.equal(written.length, 3, 'raised again after the clear');
  assert.equal((await history.list({ limit: 10 })).length, 3);
  await book.close();
});

test('several nodes on one history: the first raise is written and delivered once', async () => {
  const history = new MemoryAlarmHistory();
  const written: string[] = [];
  const books = await Promise.all(
    ['a', 'b', 'c'].map((nodeId) =>
      AlarmBook.open({ history, nodeId, onWritten: (r) => written.push(`${r.node}:${r.state}`) }),
    ),
  );
  await Promise.all(books.map((b) => b.raise(gone('e1'))));
  assert.equal(written.length, 1);
  for (const b of books) assert.equal(b.isActive('node_gone', 'e1'), true, 'every node sees it raised');
  await Promise.all(books.map((b) => b.clear('node_gone', 'e1')));
  assert.equal(written.length, 2);
  assert.ok(written[1]?.endsWith(':cleared'));
  for (const b of books) assert.equal(b.isActive('node_gone', 'e1'), false);
  await Promise.all(books.map((b) => b.close()));
});

test('the book starts from the history: alarms raised before a restart are listed', async () => {
  const history = new MemoryAlarmHistory();
  const first = await AlarmBook.open({ history, nodeId: 'n1' });
  await first.raise(gone('e1'));
  await first.raise(gone('e2'));
  await first.clear('node_gone', 'e2');
  await first.close();
  const written: AlarmRecord[] = [];
  const second = await AlarmBook.open({ history, nodeId: 'n1', onWritten: (r) => written.push(r) });
  assert.deepEqual(
    second.list().map((a) => [a.subject, a.active]),
    [
      ['e1', true],
      ['e2', false],
    ],
  );
  await second.raise(gone('e1'));
  assert.equal(written.length, 0, 'still raised: not raised again');
  await second.close();
});

test('a write that fails is retried, and a newer wish replaces it', async () => {
  const { flaky, up } = unreachableHistory();
  const written: string[] = [];
  const book = await AlarmBook.open({
    history: flaky,
    nodeId: 'n',
    retryMs: 10,
    onWritten: (r) => written.push(`${r.subject}:${r.state}`),
  });
  await book.raise(gone('e1'));
  await book.raise(gone('e2'));
  // e2 came back before anything could be written: its raise is withdrawn.
  await book.clear('node_gone', 'e2');
  assert.equal(book.pending(), 2);
  up();
  await eventually('pending writes done', () => book.pending() === 0);
  assert.deepEqual(written, ['e1:raised']);
  await book.close();
});

test('an event is raised and cleared at once: delivered, kept, never active', async () => {
  const history = new MemoryAlarmHistory();
  const written: string[] = [];
  const book = await AlarmBook.open({ history, nodeId: 'n', onWritten: (r) => written.push(r.state) });
  const takeover = { kind: 'takeover_done' as const, subject: 't1', severity: 'info' as const, message: 'm' };
  await book.event(takeover);
  await book.event(takeover);
  assert.deepEqual(written, ['raised', 'cleared', 'raised', 'cleared']);
  assert.equal(book.list(true).length, 0);
  await book.close();
});

test('a raise the history cannot take is delivered anyway after a while, and not again once written', async () => {
  const { inner, flaky, up } = unreachableHistory();
  let now = 1000;
  const written: string[] = [];
  const book = await AlarmBook.open({
    history: flaky,
    nodeId: 'n',
    retryMs: 10,
    now: () => now,
    deliverUnwrittenAfterMs: 5000,
    onWritten: (r) => written.push(`${r.subject}:${r.state}`),
  });
  await book.raise({ kind: 'nats_server_gone', subject: 's1', severity: 'critical', message: 'gone' });
  now += 4000;
  await book.raise({ kind: 'nats_server_gone', subject: 's1', severity: 'critical', message: 'gone' });
  now += 1000;
  await eventually('delivered unrecorded', () => written.length === 1);
  assert.deepEqual(written, ['s1:raised']);
  up();
  await eventually('written', () => book.pending() === 0);
  assert.deepEqual(written, ['s1:raised'], 'not delivered twice');
  assert.equal((await inner.list({ limit: 5 })).length, 1);
  await book.close();
});

test('a raise whose write succeeded but whose answer was lost is still delivered, once', async () => {
  const inner = new MemoryAlarmHistory();
  let loseNextAnswer = true;
  const lossy: AlarmHistory = {
    backend: 'memory',
    latest: (id) => inner.latest(id),
    // The first append is stored, then its acknowledgement is lost (as a JetStream publish timeout).
    append: async (r, seq) => {
      const stored = await inner.append(r, seq);
      if (loseNextAnswer) {
        loseNextAnswer = false;
        throw new Error('timeout waiting for the acknowledgement');
      }
      return stored;
    },
    list: (o) => inner.list(o),
    watch: (l) => inner.watch(l),
    close: () => inner.close(),
  };
  const written: string[] = [];
  const other: string[] = [];
  const book = await AlarmBook.open({
    history: lossy,
    nodeId: 'n1',
    retryMs: 10,
    onWritten: (r) => written.push(`${r.subject}:${r.state}:${r.node}`),
  });
  // Another node on the same history, which must not deliver what n1 wrote.
  const second = await AlarmBook.open({
    history: inner,
    nodeId: 'n2',
    retryMs: 10,
    onWritten: (r) => other.push(`${r.subject}:${r.state}`),
  });
  await book.raise(gone('adm'));
  await second.raise(gone('adm'));
  await eventually('the lost answer retried', () => book.pending() === 0 && written.length > 0);
  assert.deepEqual(written, ['adm:raised:n1']);
  assert.deepEqual(other, []);
  assert.equal((await inner.list({ limit: 10 })).length, 1, 'written once');
  await book.close();
  await second.close();
});

test('a record of this node already delivered is not delivered again by a later wish', async () => {
  // The raise below is written and delivered; then a clear whose reads fail until the raise
  // wish replaces it: the latest record is this node's raise, which must not come out twice.
  const inner = new MemoryAlarmHistory();
  let failReads = false;
  const history: AlarmHistory = {
    backend: 'memory',
    latest: (id) => (failReads ? Promise.reject(new Error('bus down')) : inner.latest(id)),
    append: (r, seq) => inner.append(r, seq),
    list: (o) => inner.list(o),
    watch: (l) => inner.watch(l),
    close: () => inner.close(),
  };
  const written: string[] = [];
  const book = await AlarmBook.open({
    history,
    nodeId: 'n1',
    retryMs: 10,
    onWritten: (r) => written.push(`${r.subject}:${r.state}`),
  });
  await book.raise(gone('adm'));
  assert.deepEqual(written, ['adm:raised']);
  failReads = true;
  await book.clear('node_gone', 'adm');
  await book.raise(gone('adm'));
  failReads = false;
  await eventually('the wishes settled', () => book.pending() === 0);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(written, ['adm:raised'], 'the raise delivered once');
  await book.close();
});
