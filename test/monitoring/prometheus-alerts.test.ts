/**
 * The shipped alert rules in a real Prometheus (Debian's package) scraping a
 * loopback cluster: an admin node and two edges on a NATS server, each node's
 * /metrics a target. The rules are docker/monitoring/mmgw-alerts.yml with
 * only their intervals shortened (evaluation every second, `for` 2 s, scrape
 * every second). While every node answers, no node-gone or admin-gone alert
 * exists, not even pending; once an edge is killed (kill -9), MmgwNodeGone
 * fires for that node's target and no other. Skips, saying why, where
 * Prometheus is missing.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse, stringify } from 'yaml';
import { eventually } from '../../testing/index.ts';
import { ROOT, startGateway } from '../harness/gateway.ts';
import { startNatsServer } from '../harness/nats.ts';
import { missingPrometheus, type PrometheusAlert, startPrometheus } from '../harness/prometheus.ts';

const WAIT = { timeoutMs: 60_000, intervalMs: 200 };

/** The shipped rules, evaluated every second, each `for` 2 s: the test waits seconds, not minutes. */
function fastRules(): string {
  const rules = parse(readFileSync(join(ROOT, 'docker', 'monitoring', 'mmgw-alerts.yml'), 'utf8')) as {
    groups: Array<{ interval?: string; rules: Array<{ alert: string; for?: string }> }>;
  };
  for (const g of rules.groups) {
    g.interval = '1s';
    for (const r of g.rules) if (r.for !== undefined) r.for = '2s';
  }
  return stringify(rules);
}

const named = (alerts: PrometheusAlert[], ...names: string[]) =>
  alerts.filter((a) => names.includes(a.labels.alertname ?? ''));

test('node gone: quiet while every node answers, firing for the node killed with kill -9', {
  skip: missingPrometheus(),
}, async (t) => {
  const nats = await startNatsServer({ jetstream: true });
  t.after(() => nats.stop());
  const node = (role: string, id: string) =>
    startGateway({ args: ['--role', role, '--engine', 'portable', '--bus', nats.url, '--node-id', id] });
  const tag = process.pid;
  const admin = await node('admin', `adm-${tag}`);
  t.after(() => admin.stop());
  const [e1, e2] = await Promise.all([node('edge', `e1-${tag}`), node('edge', `e2-${tag}`)]);
  t.after(() => Promise.all([e1?.stop(), e2?.stop()]));
  if (!e1 || !e2) throw new Error('edges not started');
  const target = (gw: { adminPort: number }) => `127.0.0.1:${gw.adminPort}`;

  const prometheus = await startPrometheus({
    targets: [admin, e1, e2].map(target),
    rules: { 'mmgw-alerts.yml': fastRules() },
  });
  t.after(() => prometheus.stop());
  await prometheus.targetsUp(WAIT.timeoutMs);
  const upAt = Date.now();

  // Every rule evaluated a few times over (more than `for`) with every target up.
  await eventually(
    'rules evaluated 4 s after every target was up',
    async () => {
      const { groups } = await prometheus.api<{ groups: Array<{ lastEvaluation: string }> }>('rules');
      return groups.length === 1 && Date.parse(groups[0]?.lastEvaluation ?? '') > upAt + 4000;
    },
    WAIT,
  );
  assert.deepEqual(named(await prometheus.alerts(), 'MmgwNodeGone', 'MmgwAdminGone'), []);
  // The scrape saw the gateway's own series, and the admin's node info by its role.
  const info = await prometheus.api<{ result: Array<{ metric: Record<string, string> }> }>(
    'query?query=mmgw_node_info',
  );
  assert.deepEqual(info.result.map((r) => r.metric.roles).sort(), ['admin', 'edge', 'edge']);

  e2.kill();
  const firing = await eventually(
    'MmgwNodeGone firing',
    async () => {
      const alerts = named(await prometheus.alerts(), 'MmgwNodeGone').filter((a) => a.state === 'firing');
      return alerts.length > 0 ? alerts : undefined;
    },
    WAIT,
  );
  assert.deepEqual(
    firing.map((a) => [a.labels.instance, a.labels.severity]),
    [[target(e2), 'critical']],
  );
  assert.equal(firing[0]?.annotations.summary, `mmgw node ${target(e2)} is gone`);
  // The admin still answers: no admin-gone.
  assert.deepEqual(named(await prometheus.alerts(), 'MmgwAdminGone'), []);
});
