import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import { startOpsServer } from './http.ts';
import { silentLogger } from './logger.ts';
import { createMetrics } from './metrics.ts';

test('healthz, readyz with reasons, metrics, mounted handlers and the error answer', async (t) => {
  let readiness = { ready: false, reasons: ['edge: no transport node known'] };
  const metrics = createMetrics({ nodeId: 'n1', roles: ['edge'] });
  const ops = await startOpsServer({
    port: 0,
    host: '127.0.0.1',
    logger: silentLogger(),
    metrics,
    readiness: () => readiness,
  });
  t.after(() => ops.close());
  const base = `http://127.0.0.1:${ops.port}`;

  const health = await fetch(`${base}/healthz`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: 'ok' });

  const notReady = await fetch(`${base}/readyz`);
  assert.equal(notReady.status, 503);
  assert.deepEqual(await notReady.json(), {
    status: 'unavailable',
    reasons: ['edge: no transport node known'],
  });
  readiness = { ready: true, reasons: [] };
  assert.equal((await fetch(`${base}/readyz`)).status, 200);

  const m = await fetch(`${base}/metrics`);
  assert.equal(m.status, 200);
  assert.match(m.headers.get('content-type') ?? '', /text\/plain/);
  const text = await m.text();
  assert.match(text, /process_cpu_seconds_total\{node="n1"\}/);
  assert.match(text, /mmgw_node_info\{roles="edge",release="dev",node="n1"\} 1/);

  assert.equal((await fetch(`${base}/nothing`)).status, 404);
  ops.use((_req, _res, url) => {
    if (url.pathname !== '/api/v1/boom') return false;
    throw new GatewayError('registry.not_found', 'no such thing');
  });
  ops.use((req, res, url) => {
    if (url.pathname !== '/api/v1/hello') return false;
    res.end(`hello ${req.method}`);
    return true;
  });
  assert.equal(await (await fetch(`${base}/api/v1/hello`)).text(), 'hello GET');
  const boom = await fetch(`${base}/api/v1/boom`);
  assert.equal(boom.status, 404);
  assert.deepEqual(await boom.json(), {
    error: { code: 'registry.not_found', message: 'no such thing', retryable: false },
  });
});

test('two nodes in one process keep separate metrics', async () => {
  const a = createMetrics({ nodeId: 'a', roles: ['edge'] });
  const b = createMetrics({ nodeId: 'b', roles: ['admin'] });
  assert.match(await a.metrics(), /node="a"/);
  assert.doesNotMatch(await a.metrics(), /node="b"/);
  assert.match(await b.metrics(), /roles="admin"/);
});
