/**
 * The shipped Prometheus files (docker/monitoring/) against promtool and the
 * gateway: the rules pass `promtool check rules` and their unit tests
 * (`promtool test rules`), the example config passes `promtool check config`,
 * and every metric the dashboard and the rules read is one a started gateway
 * (all roles, supervised children, the mail push hook and TLS on) exports,
 * so a renamed metric fails here. Skips, saying why, where promtool is missing.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { eventually, makeTestCa } from '../../testing/index.ts';
import { ROOT, startGateway } from '../harness/gateway.ts';
import { missingPrometheus, promtool } from '../harness/prometheus.ts';
import { exportedNames, metricNames } from './promql-names.ts';

const DIR = join(ROOT, 'docker', 'monitoring');
/** Series Prometheus makes itself, not the gateway. */
const PROMETHEUS_OWN = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);

/** GET over HTTPS trusting `ca` (PEM text): status and body. */
function httpsGet(url: string, ca: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function dashboardExprs(): string[] {
  const dash = JSON.parse(readFileSync(join(DIR, 'mmgw-dashboard.json'), 'utf8')) as {
    panels: Array<{ targets?: Array<{ expr: string }> }>;
  };
  return dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
}

function ruleExprs(): string[] {
  const rules = parse(readFileSync(join(DIR, 'mmgw-alerts.yml'), 'utf8')) as {
    groups: Array<{ rules: Array<{ expr: string }> }>;
  };
  return rules.groups.flatMap((g) => g.rules.map((r) => r.expr));
}

describe('promtool', { skip: missingPrometheus() }, () => {
  test('the rules pass promtool check rules', async () => {
    assert.match(await promtool(['check', 'rules', 'mmgw-alerts.yml'], DIR), /SUCCESS: 11 rules found/);
  });

  test('the rules pass their unit tests (promtool test rules)', async () => {
    assert.match(await promtool(['test', 'rules', 'mmgw-alerts.test.yml'], join(DIR, 'tests')), /SUCCESS/);
  });

  test('the example prometheus.yml passes promtool check config', async () => {
    assert.match(await promtool(['check', 'config', 'prometheus.yml'], DIR), /is valid prometheus config/);
  });
});

test('the name finder: functions, keywords, labels and ranges are not metric names', () => {
  assert.deepEqual(
    metricNames(
      'sum by (code) (rate(a_total{job="x", code!~"b_c"}[5m])) / on(node) group_left max(c_seconds offset 1m) > 0.5 and absent(d{roles=~"(.+,)?admin"}) or vector(0)',
    ).sort(),
    ['a_total', 'c_seconds', 'd'],
  );
  // Digits inside a name stay in it.
  assert.deepEqual(metricNames('nodejs_eventloop_lag_p99_seconds > 0.2'), [
    'nodejs_eventloop_lag_p99_seconds',
  ]);
  assert.deepEqual([...exportedNames('# TYPE h histogram\n# TYPE g gauge\ng 1\n')].sort(), [
    'g',
    'h',
    'h_bucket',
    'h_count',
    'h_sum',
  ]);
});

test('the dashboard and the rules read only metrics a gateway exports', async (t) => {
  const ca = makeTestCa();
  t.after(() => ca.remove());
  const { cert, key } = ca.server('monitoring');
  const gw = await startGateway({
    supervise: true,
    args: ['--tls-cert', cert, '--tls-key', key],
    env: { MMGW_MAIL_PUSH_TOKEN: 'monitoring-test-token-0123' },
  });
  t.after(() => gw.stop());
  const trust = ca.pem(ca.cert);
  // Ready: the supervised children are up, and their series in the primary's /metrics.
  await eventually(
    'ready on /readyz',
    async () => (await httpsGet(`${gw.adminUrl}/readyz`, trust)).status === 200,
    {
      timeoutMs: 60_000,
      intervalMs: 100,
    },
  );
  const text = (await httpsGet(`${gw.adminUrl}/metrics`, trust)).text;
  const exported = exportedNames(text);
  const dashboard = dashboardExprs();
  const rules = ruleExprs();
  assert.ok(dashboard.length >= 20, `${dashboard.length} dashboard queries`);
  assert.equal(rules.length, 11);
  const unknown: string[] = [];
  for (const expr of [...dashboard, ...rules]) {
    for (const name of metricNames(expr)) {
      if (!exported.has(name) && !PROMETHEUS_OWN.has(name)) unknown.push(`${name} (in ${expr.trim()})`);
    }
  }
  assert.deepEqual(unknown, [], 'metrics the gateway does not export');
});
