/**
 * A stand-in for role-worker.ts in the supervisor's unit test: speaks the
 * primary's child protocol (hello, init, ready/failed, metrics, stop) and
 * nothing else. `node --import tsx fake-role-worker.ts ok|fail`.
 */
import { CHILD_TAG } from '../server/supervision/child-entry.ts';

const mode = process.argv[2] ?? 'ok';
const send = (m: object, done?: () => void) => process.send?.({ [CHILD_TAG]: m }, undefined, {}, done);

process.on('message', (message: unknown) => {
  const m = (message as Record<string, { type: string; id?: number }> | null)?.[CHILD_TAG];
  if (m?.type === 'init') {
    if (mode === 'fail')
      send({ type: 'failed', code: 'config.invalid', message: 'the store is unreadable' }, () =>
        process.exit(2),
      );
    else send({ type: 'ready' });
  } else if (m?.type === 'metrics') {
    const series = { name: 'fake_jobs_total', help: 'jobs', type: 'counter', aggregator: 'sum' };
    send({
      type: 'metrics',
      id: m.id,
      data: [{ ...series, values: [{ value: 7, labels: { node: 'child' } }] }],
    });
  } else if (m?.type === 'stop') {
    process.exit(0);
  }
});
send({ type: 'hello' });
