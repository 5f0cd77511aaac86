// XmppAccountSession against every hostile XMPP peer (test/harness/hostile), issue #11: the
// process stays up, each login ends in a typed error within a bound and with its socket
// closed, no device-facing error carries the peer's bytes, and two accounts on the real
// Prosody keep working meanwhile. The sessions run in a child process
// (im-hostile-child.ts), so that a crash fails these tests instead of killing the runner.
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { HostileBehaviour, HostileXmppOptions } from '../harness/hostile/index.ts';
import { type ProsodyServer, startProsody } from '../harness/prosody.ts';
import type { ChildConfig, HostileCase, HostileResult } from './im-hostile-child.ts';

const CHILD = fileURLToPath(new URL('./im-hostile-child.ts', import.meta.url));
const CONNECT_TIMEOUT_MS = 3000;
const CLOSE_TIMEOUT_MS = 500;
/** The library's own timeout (10 s in xmpp-session.ts), and a margin: its timers would have fired. */
const LATE_WINDOW_MS = 11_000;
/** What a loaded 2-core machine may add to a bound. */
const SLACK_MS = 2500;

interface Expectation extends HostileCase {
  /** The typed codes this peer may end the login with. */
  codes: string[];
  /** The login must fail within this (default: connect + close timeouts). */
  boundMs?: number;
}

const c = (
  name: string,
  behaviour: HostileBehaviour,
  codes: string[],
  extra: Partial<Expectation> & { opts?: HostileXmppOptions } = {},
): Expectation => ({ name, behaviour, codes, ...extra });

const CASES: Expectation[] = [
  // Never answers: the connect timeout.
  c('half-open', 'half-open', ['im.unreachable'], { opts: { read: true } }),
  // #11 item 1: PLAIN only, then a space every 20 ms forever. The client refuses PLAIN in clear;
  // the close it then tries is never answered; formerly the process died ~12 s later.
  c('slow-drip', 'slow-drip', ['im.unreachable'], { boundMs: CLOSE_TIMEOUT_MS }),
  // A 10 MiB stanza: the size limit (1 MiB) ends the stream.
  c('huge at open', 'huge', ['im.server_error']),
  // The 10 MiB stanza streamed during teardown (#11 item 1's other trigger), with a close bound
  // long enough that the size limit, not the bound, ends it. The login fails with the refusal of
  // PLAIN, once the teardown is done.
  c('huge at teardown', 'huge', ['im.unreachable'], { opts: { hugeAt: 'teardown' }, closeTimeoutMs: 8000 }),
  c('garbage', 'garbage', ['im.server_error', 'im.unreachable']),
  c('garbage after a stream header', 'garbage', ['im.server_error', 'im.unreachable'], {
    opts: { garbagePrefix: true },
  }),
  // A success-looking reply is not a login.
  c('wrong-sasl early-success', 'wrong-sasl', ['im.unreachable', 'im.auth_failed', 'im.server_error']),
  c('wrong-sasl challenge-forever', 'wrong-sasl', ['im.unreachable', 'im.auth_failed', 'im.server_error'], {
    opts: { sasl: 'challenge-forever' },
  }),
  // #11 item 2: an HTTP service's status line, headers and Set-Cookie; an SSH banner; a stream
  // error's <text>. Never in what a device sees.
  c('banner http', 'banner-with-secrets', ['im.server_error', 'im.unreachable'], {
    opts: { banner: 'http' },
  }),
  c('banner ssh', 'banner-with-secrets', ['im.server_error', 'im.unreachable'], { opts: { banner: 'ssh' } }),
  c('banner native', 'banner-with-secrets', ['im.unknown_domain'], { opts: { banner: 'native' } }),
  c('tls-stall', 'tls-stall', ['im.unreachable']),
  c('reset-midway features', 'reset-midway', ['im.unreachable', 'im.server_error'], {
    opts: { resetDuring: 'features' },
  }),
  c('reset-midway auth', 'reset-midway', ['im.unreachable', 'im.server_error'], {
    opts: { resetDuring: 'auth' },
  }),
  c('reset-midway bind', 'reset-midway', ['im.unreachable', 'im.server_error'], {
    opts: { resetDuring: 'bind' },
  }),
];

interface ChildOutcome {
  results: Map<string, HostileResult & { failed?: string }>;
  prosody?: { changes: string[]; received: string[] };
  done: boolean;
  exitCode: number | null;
  output: string;
}

describe('XmppAccountSession against hostile XMPP peers (child process)', { timeout: 180_000 }, () => {
  let prosody: ProsodyServer;
  let outcome: ChildOutcome;

  before(async () => {
    const [alice, bob] = [
      { user: 'alice', password: 'alice-pw' },
      { user: 'bob', password: 'bob-pw' },
    ] as const;
    prosody = await startProsody({ domain: 'example.test', users: [alice, bob] });
    const config: ChildConfig = {
      prosody: {
        host: prosody.host,
        port: prosody.c2sPort,
        alice: { jid: prosody.jid(alice.user), password: alice.password },
        bob: { jid: prosody.jid(bob.user), password: bob.password },
      },
      cases: CASES.map(({ codes: _codes, boundMs: _bound, ...hostile }) => hostile),
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      closeTimeoutMs: CLOSE_TIMEOUT_MS,
      lateWindowMs: LATE_WINDOW_MS,
    };
    outcome = await runChild(config);
  });

  after(async () => {
    await prosody?.stop();
  });

  test('the process stays up through every peer and the late window after', () => {
    assert.equal(outcome.exitCode, 0, outcome.output);
    assert.equal(outcome.done, true, outcome.output);
    assert.doesNotMatch(outcome.output, /TypeError|Uncaught|uncaught/);
  });

  test('two accounts on Prosody stay online and exchange messages meanwhile', () => {
    assert.deepEqual(outcome.prosody?.changes, []);
    assert.deepEqual(outcome.prosody?.received, ['before', 'after']);
  });

  for (const expected of CASES) {
    test(`${expected.name}: a typed error in bounded time, the socket closed, nothing of the peer shown`, () => {
      const r = outcome.results.get(expected.name);
      assert.ok(r, `no result (child output:\n${outcome.output})`);
      assert.equal(r.failed, undefined);
      assert.equal(r.online, false, 'a hostile peer is never a login');
      assert.ok(r.code !== undefined && expected.codes.includes(r.code), `${r.code}: ${r.message}`);
      const connect = expected.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
      const close = expected.closeTimeoutMs ?? CLOSE_TIMEOUT_MS;
      const bound = (expected.boundMs ?? connect + close) + SLACK_MS;
      assert.ok(r.errorMs <= bound, `typed error after ${r.errorMs} ms (bound ${bound})`);
      assert.ok(
        r.closedMs !== undefined && r.closedMs <= bound + 1000,
        `socket closed after ${r.closedMs} ms`,
      );
      assert.equal(r.markerSeen, false, r.deviceText);
      assert.equal(r.sentInClear, false, 'the password never crossed the wire in clear');
    });
  }

  test('a 10 MiB stanza is not read past the size limit', () => {
    for (const name of ['huge at open', 'huge at teardown']) {
      const r = outcome.results.get(name);
      assert.ok(r);
      // The limit (1 MiB) plus what the socket buffers hold when the stream is torn down.
      assert.ok(r.peerBytesSent < 6 * 1024 * 1024, `${name}: the peer got ${r.peerBytesSent} bytes out`);
    }
  });
});

function runChild(config: ChildConfig): Promise<ChildOutcome> {
  const outcome: ChildOutcome = { results: new Map(), done: false, exitCode: null, output: '' };
  const child = fork(CHILD, [JSON.stringify(config)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  child.stdout?.on('data', (d: Buffer) => {
    outcome.output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    outcome.output += d.toString();
  });
  child.on('message', (m: { result?: HostileResult; prosody?: ChildOutcome['prosody']; done?: boolean }) => {
    if (m.result) {
      outcome.results.set(m.result.name, m.result);
      const { name, code, errorMs, closedMs, peerBytesSent } = m.result;
      console.log(
        `# ${name}: ${code} after ${errorMs} ms, socket closed after ${closedMs} ms, peer sent ${peerBytesSent} B`,
      );
    }
    if (m.prosody) outcome.prosody = m.prosody;
    if (m.done) outcome.done = true;
  });
  return new Promise((resolve) => {
    child.on('exit', (code) => {
      outcome.exitCode = code;
      resolve(outcome);
    });
  });
}
