import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventually } from '../../testing/index.ts';
import { startGateway } from '../harness/gateway.ts';

describe('ops endpoint of a running gateway', () => {
  test('/healthz, /readyz and /metrics on a node with every role', async (t) => {
    const gw = await startGateway();
    t.after(() => gw.stop());

    const health = await fetch(`${gw.adminUrl}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });

    // Readiness needs a heartbeat or two; a wait that runs out reports the last reasons.
    const ready = await eventually(
      '/readyz 200',
      async () => {
        const r = await fetch(`${gw.adminUrl}/readyz`);
        if (r.status !== 200) throw new Error(`/readyz ${r.status}: ${await r.text()}`);
        return r;
      },
      { intervalMs: 100 },
    );
    assert.equal(ready.status, 200);

    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, /^# TYPE mmgw_edge_sessions gauge$/m);
    assert.match(metrics, new RegExp(`^mmgw_edge_sessions\\{node="${gw.nodeId}"\\} 0$`, 'm'));
    assert.match(metrics, /^process_resident_memory_bytes\{/m);
    assert.match(metrics, /^mmgw_node_info\{roles="admin,transport,transcoder,edge"/m);

    assert.equal(await gw.stop(), 0, 'SIGTERM drains and exits 0');
  });

  test('/readyz says why an edge without a transport node is not ready', async (t) => {
    const gw = await startGateway({ args: ['--role', 'edge,admin'] });
    t.after(() => gw.stop());
    const res = await fetch(`${gw.adminUrl}/readyz`);
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { status: 'unavailable', reasons: ['edge: no transport node known'] });
    assert.equal((await fetch(`${gw.adminUrl}/healthz`)).status, 200, 'alive all the same');
  });
});
